"""What one admitted request holds until it ends: plain data the policy carries and hands back.

Admitting and settling are the I/O side's (edge_ext.cost.admission, run by the driver); the
policy only keeps the ``Admission`` on the stream, or rebuilds it from a 2-message request's
metadata (edge_ext.policy.outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_ext.cost.ledger_api import Hold, from_micros

# The request metadata keys an admission travels in (``Admission.metadata``).
METADATA_KEYS = ("hold", "hold_expires", "holds", "tpm", "tpm_tokens")
# Written together, each group after its first key: a hold's expiry and scopes, a window's tokens.
METADATA_GROUPS = (("hold", ("hold_expires", "holds")), ("tpm", ("tpm_tokens",)))


@dataclass(frozen=True, slots=True)
class Admission:
    """What one admitted request holds until it ends."""

    holds: tuple[Hold, ...] = ()
    window: str | None = None  # its tokens-per-minute counter
    tokens: int = 0  # tokens reserved in that window
    # The request's estimated input tokens, as reserved: its hand-over reuses them (not metadata).
    input_tokens: int | None = None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The admission as request metadata: a request answered in 2 messages is settled by
        whichever worker receives its outcome (edge_ext.policy.outcome)."""
        out: list[tuple[str, str]] = []
        if self.holds:
            first = self.holds[0]
            out += [("hold", first.id), ("hold_expires", repr(first.expires)),
                    ("holds", ";".join(f"{h.scope_id}|{h.period_key}|{h.micros}" for h in self.holds))]
        if self.window is not None:
            out += [("tpm", self.window), ("tpm_tokens", str(self.tokens))]
        return tuple(out)

    @staticmethod
    def from_metadata(route: Mapping[str, str]) -> "Admission | None":
        """The inverse of ``metadata``; None when the request held nothing."""
        holds: list[Hold] = []
        hold_id, expires = route.get("hold", ""), route.get("hold_expires", "")
        for part in filter(None, route.get("holds", "").split(";")) if hold_id and expires else ():
            scope_id, period, micros = part.split("|")
            holds.append(Hold(scope_id, period, hold_id, from_micros(int(micros)), float(expires), due=True))
        window = route.get("tpm") or None
        if not holds and window is None:
            return None
        return Admission(tuple(holds), window, int(route.get("tpm_tokens", "0") or 0))
