"""Checks applied to pattern matches: Luhn for cards, mod-97 and country length for IBANs,
digit counts and separator rules for phones, length and digit rules for secret values,
``ipaddress`` parsing for IPv6. A validator takes the match and the text and returns the
span to redact (possibly trimmed), several spans, or None to reject the match.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from edge_ext.redact.patterns import _CARD_NEXT, _re

Span = tuple[int, int]
# A validator returns the span to redact (it may trim the match), several, or None to reject.
Validator = Callable[[re.Match[str], str], Span | list[Span] | None]


_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        total += _LUHN_DOUBLE[d] if i % 2 else d
    return total % 10 == 0


def _group_prefixes(raw: str):
    """``raw``, then its prefixes ending before each separator, longest first: a run of digit
    groups may carry unrelated groups after the number (an expiry month, a year)."""
    yield raw
    for i in range(len(raw) - 1, 0, -1):
        if raw[i] in " .-":
            yield raw[:i]


def _card_body(start: int, body: str) -> Span | None:
    for prefix in _group_prefixes(body):
        digits = prefix.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _luhn(digits):
            return start, start + len(prefix)
    return None


def _card(m: re.Match[str], text: str) -> list[Span] | None:
    found = _card_body(m.start("body"), m.group("body"))
    if found is None:
        return None
    spans = [found]
    # The pattern does not start inside a run of digit groups (a Luhn-valid window of a longer
    # number is no card), except right after a card: "4111 1111 1111 1111 5555 5555 5555 4444".
    while (end := spans[-1][1]) < len(text) - 1 and text[end] in " -":
        more = _CARD_NEXT.match(text, end + 1)
        found = _card_body(end + 1, more.group("body")) if more else None
        if found is None:
            break
        spans.append(found)
    return spans


# ISO 13616 IBAN lengths by country (SWIFT IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def _iban(m: re.Match[str], text: str) -> Span | None:
    length = _IBAN_LENGTHS.get(m.group()[:2])
    if length is None:
        return None
    # The country fixes the length; the body may have run on into the next word.
    end, seen, limit = m.start(), 0, m.end("body")
    while seen < length and end < limit:
        if text[end] != " ":
            seen += 1
        end += 1
    if seen < length or (end < len(text) and text[end].isalnum()):
        return None
    compact = text[m.start():end].replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    if int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 != 1:
        return None
    return m.start(), end


def _has_digit(value: str) -> bool:
    return any("0" <= ch <= "9" for ch in value)


def _secret_value(value: str, min_len: int) -> bool:
    return (len(value) >= min_len and _has_digit(value)) or len(value) >= 24


_PASSWORD_NAMES = ("password", "passwd", "pwd")


def _assignment(m: re.Match[str], text: str) -> Span | None:
    value = m.group("value")
    min_len = 6 if m.group("name").lower().endswith(_PASSWORD_NAMES) else 16
    return m.span("value") if _secret_value(value, min_len) else None


def _bearer(m: re.Match[str], text: str) -> Span | None:
    value = m.group("value")
    return m.span("value") if _secret_value(value, 8) or len(value) >= 20 else None


def _ipv6(m: re.Match[str], text: str) -> Span | None:
    candidate = m.group()
    if not any(ch.isalnum() for ch in candidate):
        return None  # a bare "::" is punctuation in code far more often than an address
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    return m.span()


_SEPARATORS = _re(r"[ .\-]")
_DOUBLE_SEPARATOR = _re(r"[ .\-]{2}")
_DATE_LIKE = _re(r"\(?\d{1,2}([ .\-])\d{1,2}\1(?:19|20)\d\d\b")


def _digit_count(value: str) -> int:
    return sum(1 for ch in value if "0" <= ch <= "9")


def _phone_intl_number(value: str) -> bool:
    if not 9 <= _digit_count(value) <= 15 or _DOUBLE_SEPARATOR.search(value):
        return False
    # "00" dialling without any grouping is indistinguishable from a zero-padded id.
    if value.startswith("00") and not _SEPARATORS.search(value) and "(" not in value:
        return False
    return value.count("(") == value.count(")") <= 1 and value[-1].isdigit()


def _phone_intl(m: re.Match[str], text: str) -> Span | None:
    start = m.start("body")
    for prefix in _group_prefixes(m.group("body")):
        if _phone_intl_number(prefix):
            return start, start + len(prefix)
    return None


def _phone_national(m: re.Match[str], text: str) -> Span | None:
    value = m.group()
    if not 9 <= _digit_count(value) <= 12 or _DATE_LIKE.match(value):
        return None
    # One separator kind throughout: "01.02.2024 10" (a date and a time) mixes two.
    if len(set(_SEPARATORS.findall(value.split(")")[-1]))) > 1:
        return None
    return m.span()
