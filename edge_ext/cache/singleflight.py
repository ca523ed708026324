"""Identical concurrent misses in one process make one provider call; the rest wait for it.

The first miss for a key leads; later ones follow and get the leader's entry (or None when the
leader's answer could not be stored, and then call the provider themselves). Followers wait at
most ``max_wait`` seconds. A leader always resolves: ``finish`` runs when its stream ends,
whatever the outcome.
"""

from __future__ import annotations

import asyncio

from edge_ext.cache.entry import Entry


class SingleFlight:
    def __init__(self, max_wait: float):
        self.max_wait = max_wait
        self._flights: dict[str, asyncio.Future[Entry | None]] = {}

    def lead(self, key: str) -> bool:
        """True when the caller is the first in flight for ``key`` (and must call ``finish``)."""
        if key in self._flights:
            return False
        self._flights[key] = asyncio.get_running_loop().create_future()
        return True

    async def follow(self, key: str) -> Entry | None:
        flight = self._flights.get(key)
        if flight is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(flight), self.max_wait)
        except asyncio.TimeoutError:
            return None

    def finish(self, key: str, entry: Entry | None) -> None:
        flight = self._flights.pop(key, None)
        if flight is not None and not flight.done():
            flight.set_result(entry)

    def __len__(self) -> int:
        return len(self._flights)
