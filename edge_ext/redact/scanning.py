"""The scanning engine: the priority-ordered detector table (pattern, validator, required
literals, where to run) and ``_scan``, which runs each detector over the whole text or only
its digit and colon islands, keeps the non-overlapping findings (an earlier detector wins an
overlap) and scrubs every other occurrence of a secret or email once found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_ext.redact.patterns import (
    _ASSIGNMENT,
    _ASSIGNMENT_GATE,
    _BEARER,
    _CARD,
    _EMAIL,
    _IBAN,
    _IPV4,
    _IPV6,
    _KEY_PREFIXES,
    _KNOWN_KEY,
    _PEM_KEY,
    _PHONE_INTL,
    _PHONE_NANP,
    _PHONE_NATIONAL,
    _SSN,
    _re,
)
from edge_ext.redact.validators import (
    Validator,
    _assignment,
    _bearer,
    _card,
    _has_digit,
    _iban,
    _ipv6,
    _phone_intl,
    _phone_national,
)

# Kinds whose value is a secret in itself: every other occurrence of it is scrubbed too. Emails
# and PEM blocks are left out: their own patterns match wherever the same string recurs (a longer
# token around an email is itself an email), while a value found by its context (`api_key=`,
# `Bearer `, a key glued to a word) can recur without it.
_SCRUB_EVERYWHERE = frozenset({"API_KEY", "BEARER"})
_SCRUB_MIN_LEN = 8
# Each distinct value costs one pass over the text (str.find, ~0.3 ms per MB): this bounds
# values x text length, so a text stuffed with distinct secrets cannot make the scrub quadratic.
SCRUB_BUDGET = 1 << 28


class TooManySecrets(ValueError):
    """More distinct secrets than the text can be searched for within :data:`SCRUB_BUDGET`."""


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Detector:
    kind: str
    regex: re.Pattern[str]
    validate: Validator | None = None
    # The detector runs only if one of these literals occurs in the text (in its lowercased
    # form when ``folded``): most text has no "@", "bearer" or "sk-", and `in` is far cheaper
    # than a regex scan.
    needs: tuple[str, ...] = ()
    folded: bool = False
    # Or only if this pattern is found in the lowercased text.
    gate: re.Pattern[str] | None = None
    # Where the regex is run: the whole text, or only the islands found by _numeric_islands
    # or _colon_islands (see there).
    islands: str = "all"


# Priority order: an earlier detector wins an overlap.
_DETECTORS: tuple[_Detector, ...] = (
    _Detector("API_KEY", _PEM_KEY, needs=("PRIVATE KEY-----",)),
    _Detector("API_KEY", _KNOWN_KEY, needs=_KEY_PREFIXES),
    _Detector("API_KEY", _ASSIGNMENT, _assignment, gate=_ASSIGNMENT_GATE),
    _Detector("BEARER", _BEARER, _bearer, needs=("bearer",), folded=True),
    _Detector("EMAIL", _EMAIL, needs=("@",)),
    _Detector("IBAN", _IBAN, _iban),
    _Detector("CARD", _CARD, _card, islands="numeric"),
    _Detector("SSN", _SSN, islands="numeric"),
    _Detector("IP", _IPV6, _ipv6, islands="colon"),
    _Detector("IP", _IPV4, islands="numeric"),
    _Detector("PHONE", _PHONE_INTL, _phone_intl, islands="numeric"),
    _Detector("PHONE", _PHONE_NANP, islands="numeric"),
    _Detector("PHONE", _PHONE_NATIONAL, _phone_national, islands="numeric"),
)


def _merge(accepted: list[Finding], candidates: list[tuple[int, int]], kind: str) -> list[Finding]:
    """``accepted`` (sorted, non-overlapping) plus the candidates that overlap nothing accepted
    before them: one sort and one pass per detector, so many findings stay linear."""
    candidates.sort(key=_start)
    added: list[Finding] = []
    j, count, last_end = 0, len(accepted), -1
    for start, end in candidates:
        if end <= start or start < last_end:
            continue
        while j < count and accepted[j].end <= start:
            j += 1
        if j < count and accepted[j].start < end:
            continue
        added.append(Finding(kind, start, end))
        last_end = end
    if not added:
        return accepted
    return sorted(accepted + added, key=_finding_start)


def _start(span: tuple[int, int]) -> int:
    return span[0]


def _finding_start(finding: Finding) -> int:
    return finding.start


# Islands. A regex that cannot skip ahead to a literal costs ~15-40 us per KB of prose, and
# most of the patterns are such. The numeric and IPv6 patterns consume only characters of a
# small class, so they are run only inside maximal runs of that class ("islands") found by one
# fast scan, with ``endpos`` one past the island so that their trailing lookaheads see the same
# character as in the full text (lookbehinds see before ``pos`` anyway). A test checks that this
# finds exactly what scanning the whole text finds.
# Every character the numeric patterns consume. A leading character class (not an optional
# prefix) lets the engine skip ahead fast; islands without a digit are dropped after.
_NUMERIC_ISLAND = _re(r"[0-9(+][0-9 ().+\-]*")
_NUMERIC_MIN = 7  # the shortest numeric finding, an IPv4 address like 1.1.1.1
# Only runs with two colons or more: a lone "name: value" colon is not worth a Python step.
_COLON_ISLAND = _re(r":[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*")
_HEX = frozenset("0123456789abcdefABCDEF")


def _numeric_islands(text: str) -> list[tuple[int, int]]:
    return [
        m.span()
        for m in _NUMERIC_ISLAND.finditer(text)
        if m.end() - m.start() >= _NUMERIC_MIN and _has_digit(m.group())
    ]


def _colon_islands(text: str) -> list[tuple[int, int]]:
    islands = []
    for m in _COLON_ISLAND.finditer(text):
        start = m.start()
        # An address's first group (up to 4 hex digits) precedes the first colon.
        while start > 0 and m.start() - start < 4 and text[start - 1] in _HEX:
            start -= 1
        islands.append((start, m.end()))
    return islands


def _scan(text: str, chosen: frozenset[str] | None, use_islands: bool, scrub: bool = True) -> list[Finding]:
    """Findings sorted by position. ``scrub=False`` skips the search for recurrences of found
    secrets, which only adds spans of kinds already found."""
    folded: str | None = None
    island_cache: dict[str, list[tuple[int, int]]] = {}
    accepted: list[Finding] = []
    for det in _DETECTORS:
        if chosen is not None and det.kind not in chosen:
            continue
        if (det.folded or det.gate) and folded is None:
            folded = text.lower()
        if det.needs:
            haystack = folded if det.folded else text
            for literal in det.needs:
                if literal in haystack:
                    break
            else:
                continue
        if det.gate is not None and det.gate.search(folded) is None:
            continue
        if det.islands == "all" or not use_islands:
            regions = [(0, len(text))]
        else:
            if det.islands not in island_cache:
                finder = _numeric_islands if det.islands == "numeric" else _colon_islands
                island_cache[det.islands] = finder(text)
            regions = [(start, min(end + 1, len(text))) for start, end in island_cache[det.islands]]
        candidates: list[tuple[int, int]] = []
        for start, end in regions:
            for m in det.regex.finditer(text, start, end):
                found = det.validate(m, text) if det.validate else m.span()
                if isinstance(found, list):
                    candidates.extend(found)
                elif found is not None:
                    candidates.append(found)
        if candidates:
            accepted = _merge(accepted, candidates, det.kind)
    return _scrub(text, accepted) if scrub else accepted


def _scrub(text: str, accepted: list[Finding]) -> list[Finding]:
    # A value reported once is removed wherever it recurs, e.g. a key first seen as
    # `api_key=XYZ` and later quoted bare.
    secrets: dict[str, str] = {}
    for f in accepted:
        if f.kind in _SCRUB_EVERYWHERE and f.end - f.start >= _SCRUB_MIN_LEN:
            secrets.setdefault(text[f.start:f.end], f.kind)
    if len(secrets) * len(text) > SCRUB_BUDGET:
        raise TooManySecrets(f"{len(secrets)} distinct secrets in {len(text)} characters")
    for value, kind in secrets.items():
        recurrences = []
        at = text.find(value)
        while at != -1:
            recurrences.append((at, at + len(value)))
            at = text.find(value, at + 1)
        accepted = _merge(accepted, recurrences, kind)
    return accepted
