"""The public redaction API: ``scan`` (spans), ``redact`` (text with placeholders and the
kinds found), ``detect`` (kinds only), ``placeholder`` and the fixed order of kinds, ``KINDS``,
in which findings are reported.
"""

from __future__ import annotations

from collections.abc import Collection

from edge_ext.redact.scanning import Finding, _scan

KINDS: tuple[str, ...] = ("EMAIL", "PHONE", "CARD", "SSN", "IBAN", "API_KEY", "BEARER", "IP")


def placeholder(kind: str) -> str:
    return f"[{kind}]"


def _check_kinds(kinds: Collection[str] | None) -> frozenset[str] | None:
    if kinds is None:
        return None
    chosen = frozenset(kinds)
    unknown = chosen - set(KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    return chosen


def scan(text: str, *, kinds: Collection[str] | None = None) -> list[Finding]:
    """Non-overlapping findings in ``text``, sorted by position."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    return _scan(text, _check_kinds(kinds), use_islands=True)


def _ordered_kinds(findings: list[Finding]) -> list[str]:
    present = {f.kind for f in findings}
    return [kind for kind in KINDS if kind in present]


def redact(text: str, *, kinds: Collection[str] | None = None) -> tuple[str, list[str]]:
    """``text`` with each finding replaced by its placeholder, and the kinds found."""
    findings = scan(text, kinds=kinds)
    if not findings:
        return text, []
    parts: list[str] = []
    pos = 0
    for f in findings:
        parts.append(text[pos:f.start])
        parts.append(placeholder(f.kind))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), _ordered_kinds(findings)


def detect(text: str, *, kinds: Collection[str] | None = None) -> list[str]:
    """The kinds ``redact`` would report for ``text``."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    # Recurrences of a found secret only add spans of a kind already found.
    return _ordered_kinds(_scan(text, _check_kinds(kinds), use_islands=True, scrub=False))
