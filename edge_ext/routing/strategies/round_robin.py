"""Take turns: each call starts one further along the group, the rest follow in config order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from edge_ext.routing.strategies.base import Candidate, RouteContext

# Groups come from the config, so this only bounds a caller that builds ad-hoc candidate lists.
_MAX_GROUPS = 4096


class RoundRobin:
    name: ClassVar[str] = "round_robin"

    def __init__(self) -> None:
        # One counter per group (the candidate set), so one instance can serve every model.
        self._next: dict[tuple[tuple[str, str], ...], int] = {}

    def order(self, candidates: Sequence[Candidate], ctx: RouteContext) -> list[Candidate]:
        n = len(candidates)
        if n <= 1:
            return list(candidates)
        group = tuple((c.provider, c.upstream_model) for c in candidates)
        turn = self._next.get(group, 0)
        if group not in self._next and len(self._next) >= _MAX_GROUPS:
            self._next.clear()
        self._next[group] = (turn + 1) % n
        return [*candidates[turn:], *candidates[:turn]]
