"""Spend ledgers against real stores: disk shared by processes, Redis with an outage in the middle."""

from decimal import Decimal

import pytest

from edge_ext.cost.ledgers import DiskLedger, LedgerUnavailable, RedisLedger, from_micros, to_micros
from tests.redis_server import RedisServer


@pytest.mark.parametrize("usd, micros", [("0.000000001", 1), ("0.0000015", 2), ("1", 1_000_000)],
                         ids=["nano-rounds-up", "half-micro-rounds-up", "one-dollar"])
def test_micro_dollars_never_undercount(usd, micros):
    assert to_micros(Decimal(usd)) == micros and from_micros(micros) >= Decimal(usd)


async def test_disk_ledger_adds_up(tmp_path):
    a, b = DiskLedger(str(tmp_path)), DiskLedger(str(tmp_path))  # two workers, one directory
    await a.add("key:x", "2026-11-27", Decimal("0.5"))
    await b.add("key:x", "2026-11-27", Decimal("0.25"))
    assert await a.spent("key:x", "2026-11-27") == Decimal("0.75")
    assert await a.spent("key:x", "2026-11-28") == 0


async def test_redis_outage_keeps_spend_and_writes_it_back(tmp_path):
    server = RedisServer()
    server.start()
    try:
        ledger = RedisLedger(server.url, DiskLedger(str(tmp_path)), fail_open=True)
        await ledger.add("tenant:t", "p", Decimal("1"))
        server.stop()
        await ledger.add("tenant:t", "p", Decimal("2"))  # kept locally
        assert await ledger.spent("tenant:t", "p") == Decimal("3")  # last known + pending
        closed = RedisLedger(server.url, DiskLedger(str(tmp_path)), fail_open=False)
        with pytest.raises(LedgerUnavailable):
            await closed.spent("tenant:t", "p")
        server.start()  # empty again: only what this replica kept is written back
        assert await ledger.spent("tenant:t", "p") == Decimal("2")
        other = RedisLedger(server.url, DiskLedger(str(tmp_path)), fail_open=True)
        assert await other.spent("tenant:t", "p") == Decimal("2")
    finally:
        server.cleanup()
