"""Runs last in the e2e suite: every log the edges wrote holds no key and none of the planted PII.

Logs are the combined output of each edge (supervisor, workers, Envoy's access log), kept in
pytest's temporary directories.
"""

from pathlib import Path

import pytest

from tests import hostile, keys

SECRETS = [
    *(value for name, value in vars(keys).items() if name.isupper()),
    hostile.KEY_ACME, hostile.KEY_OTHER, hostile.OPENAI_PROVIDER_KEY, hostile.ANTHROPIC_PROVIDER_KEY,
]
PLANTED_PII = ["jane.doe@example.com", "4111 1111 1111 1111", "+1 415 555 0100"]


def test_no_log_line_carries_a_key_or_planted_pii(tmp_path_factory):
    logs = list(Path(tmp_path_factory.getbasetemp()).rglob("*.log"))
    if not logs:
        pytest.skip("no edge ran in this session (run the whole e2e suite to scan its logs)")
    leaks = []
    for log in logs:
        text = log.read_text(errors="replace")
        leaks += [(str(log), s) for s in SECRETS + PLANTED_PII if s in text]
    assert not leaks, leaks
