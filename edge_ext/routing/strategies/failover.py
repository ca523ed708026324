"""Priority order: the lowest ``priority`` first, equal priorities in config order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from edge_ext.routing.strategies.base import Candidate, RouteContext


class Failover:
    name: ClassVar[str] = "failover"

    def order(self, candidates: Sequence[Candidate], ctx: RouteContext) -> list[Candidate]:
        # sorted() is stable, which is what keeps config order among equals.
        return sorted(candidates, key=lambda c: c.priority)
