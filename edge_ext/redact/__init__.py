"""PII and secret redaction for logs, traces and cached prompts.

``redact(text)`` replaces what it finds with a placeholder naming the kind (``[EMAIL]``) and
returns the kinds found, deduplicated, in the fixed order of :data:`KINDS` (so the same findings
always give the same list, whatever their position). ``detect`` returns only the kinds;
``scan`` returns the spans.
:class:`~edge_ext.redact.document.Document` scans a whole JSON document (keys, strings, long
numbers, strings holding JSON) in one pass and redacts it in place: the prompt policy uses it.

What is found, and the rules that keep ordinary text out:

* EMAIL: ``local@domain.tld`` (ASCII; the TLD must be letters).
* PHONE: ``+CC`` (or ``00CC`` with grouping) international numbers with 9-15 digits (E.164
  allows 15); North American
  ``(555) 123-4567`` / ``555-123-4567`` / ``1-800-555-0199`` (area code and exchange start 2-9, as
  NANP numbers do); national numbers with a trunk ``0`` (``020 7946 0958``, ``030 1234567``,
  ``06-12345678``) with 9-12 digits. National formats need a separator between groups and use
  one separator kind throughout, so years (2024), order numbers (0012345678), ISBNs, dates
  (01.02.2024) and bare digit runs are not phones.
* CARD: 13-19 digits, optionally grouped by spaces or dashes, starting 2-6 (the ISO/IEC 7812
  industry digits of payment networks: Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay)
  and passing the Luhn check. A Luhn-invalid number is never a card. A trailing group that
  breaks the check (e.g. an expiry month) is dropped and the rest is checked again. Neither
  cards nor phones start inside a run of digit groups (``DE89 3704 0044 ...``), where some
  window passes Luhn by chance, except a card right after another card.
* SSN: US ``NNN-NN-NNNN`` (or with spaces), excluding numbers the SSA never issues: area 000,
  666 or 9xx (9xx are ITINs), group 00, serial 0000.
* IBAN: country code, check digits and BBAN, grouped by single spaces or not at all, uppercase;
  the length must match the country's and the ISO 13616 mod-97 check must pass.
* API_KEY: OpenAI ``sk-``/``sk-proj-``, Anthropic ``sk-ant-``, AWS ``AKIA``/``ASIA`` key ids,
  GitHub ``ghp_``/``github_pat_``, Google ``AIza``, Slack ``xox?-``, JWTs, PEM private key
  blocks; and the value after a name ending in ``api_key``/``apiKey``, ``x-api-key``, ``token``,
  ``secret``, ``client_secret``, ``password`` followed by ``=`` or ``:`` (JSON, YAML, env
  files, headers, query strings; the name itself stays). Such a value
  counts when it is at least 16 characters (6 for passwords) and holds a digit, or is at least
  24 characters (long letters-only tokens exist, long letters-only words do not).
* BEARER: the credential after ``Bearer`` (the word itself stays): at least 8 characters with a
  digit, or at least 20.
* IP: IPv4 dotted quads with every octet 0-255 and no leading zeros, anywhere, so a four-part
  version string such as ``1.2.3.4`` is redacted as an IP (over-redaction is the safe side;
  ``1.2.3.4.5`` and ``1.2.3`` are not IPs); IPv6 in any textual form that ``ipaddress`` accepts,
  standing alone (``std::vector``, times like ``12:30:45`` and MAC addresses are not).

When findings overlap, the kind listed first in the order API_KEY, BEARER, EMAIL, IBAN, CARD,
SSN, IP, PHONE wins. A secret or email found once is scrubbed wherever else the same string
appears, even where its context (``api_key=``) is missing, so output never repeats a value
that was reported (an email's own pattern finds it wherever it recurs; an API key or bearer
credential is searched for again). That search costs one pass over the text per distinct
value; a text with more distinct secrets than ``SCRUB_BUDGET`` allows for its length raises
``TooManySecrets`` (a ValueError) rather than going quadratic.

Speed: patterns are precompiled, start only at token boundaries (lookbehinds) and use bounded
or separator-delimited repetition, and overlaps are resolved by one sorted merge per detector,
so time is linear in the input (tests feed 200 KB adversarial runs and texts dense with
findings). Detectors whose literal (``@``, ``bearer``, ``sk-``, a secret's name before ``:`` or
``=``) is absent are skipped, and the numeric and IPv6 patterns run only on the digit and colon
"islands" of the text. Measured on one core (CPython 3.11): ~20-25 us per KB of ordinary prose,
~250 us per KB of text dense with findings (an email, a phone and an SSN per 60 characters).
"""

from __future__ import annotations

from edge_ext.redact import scanning as _scanning
from edge_ext.redact.api import KINDS, detect, placeholder, redact, scan
from edge_ext.redact.scanning import Finding, TooManySecrets

__all__ = ["KINDS", "Finding", "TooManySecrets", "detect", "placeholder", "redact", "scan"]

# Not public: the test that checks island scanning against whole-text scanning calls it here.
_scan = _scanning._scan
