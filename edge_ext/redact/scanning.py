"""The scanning engine: the priority-ordered detector table (pattern, validator, required
literals, where to run) and ``_scan``, which runs each detector over the whole text or only
its digit and colon islands, keeps the non-overlapping findings (an earlier detector wins an
overlap) and scrubs every other occurrence of a secret or email once found.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from edge_ext.redact.patterns import (
    _ASSIGNMENT,
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

# Kinds whose value is a secret in itself: every other occurrence of it is scrubbed too.
_SCRUB_EVERYWHERE = frozenset({"EMAIL", "API_KEY", "BEARER"})
_SCRUB_MIN_LEN = 8


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
    # Where the regex is run: the whole text, or only the islands found by _numeric_islands
    # or _colon_islands (see there).
    islands: str = "all"


# Priority order: an earlier detector wins an overlap.
_DETECTORS: tuple[_Detector, ...] = (
    _Detector("API_KEY", _PEM_KEY, needs=("PRIVATE KEY-----",)),
    _Detector("API_KEY", _KNOWN_KEY, needs=_KEY_PREFIXES),
    _Detector("API_KEY", _ASSIGNMENT, _assignment, needs=("key", "token", "secret", "passw", "pwd"), folded=True),
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


class _Spans:
    """Accepted, non-overlapping spans kept sorted by start."""

    __slots__ = ("starts", "findings")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.findings: list[Finding] = []

    def add(self, kind: str, start: int, end: int) -> bool:
        if end <= start:
            return False
        i = bisect.bisect_right(self.starts, start)
        if i > 0 and self.findings[i - 1].end > start:
            return False
        if i < len(self.starts) and self.starts[i] < end:
            return False
        self.starts.insert(i, start)
        self.findings.insert(i, Finding(kind, start, end))
        return True


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
_COLON_ISLAND = _re(r":[0-9A-Fa-f:.]*")
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
        if m.group().count(":") < 2:
            continue
        start = m.start()
        # An address's first group (up to 4 hex digits) precedes the first colon.
        while start > 0 and m.start() - start < 4 and text[start - 1] in _HEX:
            start -= 1
        islands.append((start, m.end()))
    return islands


def _scan(text: str, chosen: frozenset[str] | None, use_islands: bool) -> list[Finding]:
    folded: str | None = None
    island_cache: dict[str, list[tuple[int, int]]] = {}
    spans = _Spans()
    for det in _DETECTORS:
        if chosen is not None and det.kind not in chosen:
            continue
        if det.needs:
            if det.folded and folded is None:
                folded = text.lower()
            haystack = folded if det.folded else text
            if not any(literal in haystack for literal in det.needs):
                continue
        if det.islands == "all" or not use_islands:
            regions = [(0, len(text))]
        else:
            if det.islands not in island_cache:
                finder = _numeric_islands if det.islands == "numeric" else _colon_islands
                island_cache[det.islands] = finder(text)
            regions = [(start, min(end + 1, len(text))) for start, end in island_cache[det.islands]]
        for start, end in regions:
            for m in det.regex.finditer(text, start, end):
                found = det.validate(m, text) if det.validate else m.span()
                if isinstance(found, list):
                    for span in found:
                        spans.add(det.kind, *span)
                elif found is not None:
                    spans.add(det.kind, *found)
    # A value reported once is removed wherever it recurs, e.g. a key first seen as
    # `api_key=XYZ` and later quoted bare.
    secrets = {
        text[f.start:f.end]: f.kind
        for f in list(spans.findings)
        if f.kind in _SCRUB_EVERYWHERE and f.end - f.start >= _SCRUB_MIN_LEN
    }
    for value, kind in secrets.items():
        at = text.find(value)
        while at != -1:
            spans.add(kind, at, at + len(value))
            at = text.find(value, at + 1)
    return spans.findings
