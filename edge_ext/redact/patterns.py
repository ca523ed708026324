"""The regular expressions that find candidates for each kind of PII and secret.

Every pattern is compiled ASCII-only by ``_re`` and is linear in its input (token-boundary
lookbehinds, bounded or separator-delimited repetition); what a match must further satisfy
is checked in :mod:`edge_ext.redact.validators`, and which pattern runs where and in what
priority is the detector table in :mod:`edge_ext.redact.scanning`.
"""

from __future__ import annotations

import re


def _re(pattern: str) -> re.Pattern[str]:
    # ASCII: \d is [0-9] and \w is [A-Za-z0-9_]. Unicode digits (Arabic-Indic, fullwidth) are
    # not what card, phone or IP formats are written in, and the validators do ASCII arithmetic.
    return re.compile(pattern, re.ASCII)


_KNOWN_KEY = _re(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"sk-[A-Za-z0-9_\-]{20,}"  # OpenAI sk-, sk-proj-, sk-svcacct-; Anthropic sk-ant-api03-
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"  # AWS access key ids (long-lived, STS)
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"
    r"|AIza[A-Za-z0-9_\-]{35}(?![A-Za-z0-9_\-])"  # Google API keys
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"  # JWT: header.payload.sig
    r")"
)
_KEY_PREFIXES = ("sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "AIza", "xox", "eyJ")

# The name may end a longer one (OPENAI_API_KEY, accessToken, x-api-key), so nothing is
# required before it; bare "key" is not a name (monkey: 1234...), "api_key" is.
_ASSIGNMENT = _re(
    r"(?P<name>(?i:api[_\-]?key|(?:access|secret|private)[_\-]?key(?:[_\-]?id)?|client[_\-]?secret"
    r"|token|secret|password|passwd|pwd))"
    r"[\"']?[ \t]{0,3}[:=][ \t]{0,3}[\"']?"
    # Up to a quote, whitespace or a separator of the surrounding syntax (query string, header
    # list, HTML): passwords hold any printable character.
    r"(?P<value>[^\s\"'`,;&<>]{6,})"
)

# What every _ASSIGNMENT match holds, in the lowercased text: the end of a name, then the
# separator. A cheap gate (~4 us per KB against ~50 for _ASSIGNMENT itself): "max_tokens" and
# "secret" occur in ordinary bodies, a name followed by ":" or "=" rarely.
_ASSIGNMENT_GATE = re.compile(r"""(?:key(?:[_\-]?id)?|secret|token|passw(?:or)?d|pwd)["']?[ \t]{0,3}[:=]""")

# PEM private keys, header to footer. The body (base64, line breaks, RFC 1421 headers such as
# "DEK-Info: AES-128-CBC,...") never holds "-----", so each header is scanned only up to the
# next dash run, possessively: many headers without footers stay linear.
_PEM_KEY = _re(
    r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY-----(?:[A-Za-z0-9+/=\s:,.]|-(?!----))*+"
    r"-----END[A-Z ]{0,30}PRIVATE KEY-----"
)

_BEARER = _re(r"(?<![A-Za-z0-9_\-])(?i:bearer)[ \t]{1,8}(?P<value>[A-Za-z0-9\-._~+/]+=*)")

_EMAIL = _re(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,63}")

# The body is read in a lookahead so that a run that turns out longer than its country's IBAN
# (running into the next word, or into another IBAN) does not swallow what follows.
# (Starting with a consumed [A-Z] rather than the lookbehind lets the engine skip ahead fast.)
_IBAN = _re(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?=(?P<body>(?: ?[A-Z0-9]){11,30}))")

# Candidates that must be validated and may be trimmed (cards, international phones) are read in
# a lookahead, so a rejected or trimmed candidate does not swallow the number that follows it.
_CARD_NEXT = _re(r"(?=(?P<body>[2-6]\d(?:[ \-]?\d){11,17})(?!\d))")
_CARD = _re(r"(?<!\d)(?<!\d[ \-])" + _CARD_NEXT.pattern)

_SSN = _re(r"(?<![\d\-])(?!000|666|9\d\d)\d{3}([ \-])(?!00)\d{2}\1(?!0000)\d{4}(?![\d\-]|\.\d)")

_IPV6 = _re(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:]|\.\d)"
)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = _re(rf"(?<![\d.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\d|\.\d)")

# "+" or the "00" international call prefix, then the country code.
_PHONE_INTL = _re(r"(?<![\w+])(?<!\d[ .\-])(?=(?P<body>(?:\+|00)[1-9][\d ().\-]{6,22}\d)(?!\d))")
_PHONE_NANP = _re(
    r"(?<![\w+.\-])(?<!\d )(?:1[ .\-])?(?:\([2-9]\d{2}\)[ .\-]?|[2-9]\d{2}[ .\-])[2-9]\d{2}[ .\-]\d{4}"
    r"(?!\w|[ .\-]\d)"
)
_PHONE_NATIONAL = _re(
    r"(?<![\w+.\-/])(?<!\d )(?:\(0[1-9]\d{0,3}\)|0[1-9]\d{0,3})(?:[ .\-]\d{2,8}){1,4}(?!\w|[ .\-/]\d)"
)
