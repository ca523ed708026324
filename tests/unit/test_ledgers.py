"""Spend ledgers against real stores: disk shared by processes, Redis with an outage in the middle;
reservations keep the same promises on disk, in Redis and in the tests' in-memory fake."""

from decimal import Decimal

import pytest

from edge_ext.cost.ledger_api import Hold, Totals
from edge_ext.cost.ledger_scripts import CHARGE_ONCE, RESERVE
from edge_ext.cost.ledgers import DiskLedger, LedgerUnavailable, RedisLedger, from_micros, to_micros
from tests.fakes import MemoryLedger


@pytest.mark.parametrize("usd, micros", [("0.000000001", 1), ("0.0000015", 2), ("1", 1_000_000)],
                         ids=["nano-rounds-up", "half-micro-rounds-up", "one-dollar"])
def test_micro_dollars_never_undercount(usd, micros):
    assert to_micros(Decimal(usd)) == micros and from_micros(micros) >= Decimal(usd)


NOW = 1795737600.0  # 2026-11-27T00:00:00Z


async def charge(ledger, scope_id: str, period: str, usd: str) -> None:
    """Settled spend with no reservation before it."""
    await ledger.settle(Hold(scope_id, period, f"charge-{usd}", Decimal(usd), NOW + 600), Decimal(usd), estimated=False)


async def spent(ledger, scope_id: str, period: str) -> Decimal:
    return (await ledger.totals(scope_id, period, NOW)).spent


async def test_disk_ledger_adds_up(tmp_path):
    a, b = DiskLedger(str(tmp_path)), DiskLedger(str(tmp_path))  # two workers, one directory
    await charge(a, "key:x", "2026-11-27", "0.5")
    await charge(b, "key:x", "2026-11-27", "0.25")
    assert await spent(a, "key:x", "2026-11-27") == Decimal("0.75")
    assert await spent(a, "key:x", "2026-11-28") == 0


async def test_redis_outage_keeps_spend_and_writes_it_back(tmp_path, redis_server):
    ledger = RedisLedger(redis_server.client(), DiskLedger(str(tmp_path)), fail_open=True)
    await charge(ledger, "tenant:t", "p", "1")
    redis_server.stop()
    await charge(ledger, "tenant:t", "p", "2")  # kept locally
    assert await spent(ledger, "tenant:t", "p") == Decimal("3")  # last known + pending
    closed = RedisLedger(redis_server.client(), DiskLedger(str(tmp_path)), fail_open=False)
    with pytest.raises(LedgerUnavailable):
        await spent(closed, "tenant:t", "p")
    redis_server.start()  # empty again: only what this replica kept is written back
    assert await spent(ledger, "tenant:t", "p") == Decimal("2")
    other = RedisLedger(redis_server.client(), DiskLedger(str(tmp_path)), fail_open=True)
    assert await spent(other, "tenant:t", "p") == Decimal("2")


# --- reservations: the same promises from every ledger ------------------------------------------


def make_ledger(kind: str, tmp_path, redis_server, name: str = "a"):
    if kind == "memory":
        return MemoryLedger()
    if kind == "disk":
        return DiskLedger(str(tmp_path / "ledger"), wall=lambda: NOW)
    return RedisLedger(redis_server.client(5000), DiskLedger(str(tmp_path / f"fallback-{name}"), wall=lambda: NOW), fail_open=False,
                       prefix=f"t:{tmp_path.name}:", timeout_s=5)  # generous: these tests are about the ledger, not latency


KINDS = ["memory", "disk", "redis"]


def hold(hold_id: str, usd: str, expires: float = NOW + 600, scope: str = "tenant:acme") -> Hold:
    return Hold(scope, "2026-11-27", hold_id, Decimal(usd), expires)


@pytest.fixture(params=KINDS)
def ledger(request, tmp_path):
    server = request.getfixturevalue("shared_redis") if request.param == "redis" else None
    return make_ledger(request.param, tmp_path, server)


async def test_reservations_admit_while_spend_and_holds_are_below_the_limit(ledger):
    limit = Decimal("1.00")
    results = [await ledger.reserve(hold(f"h{i}", "0.40"), limit, NOW) for i in range(4)]
    assert [admitted for admitted, _ in results] == [True, True, True, False]
    assert [before.held for _, before in results] == [0, Decimal("0.4"), Decimal("0.8"), Decimal("1.2")]
    assert await ledger.totals("tenant:acme", "2026-11-27", NOW) == Totals(Decimal(0), Decimal("1.2"), Decimal(0))
    # Other subjects and periods are untouched.
    assert (await ledger.totals("tenant:other", "2026-11-27", NOW)).held == 0


async def test_settling_replaces_a_hold_by_the_charge_and_marks_estimates(ledger):
    limit = Decimal("1.00")
    for name in ("real", "cut", "refused"):
        assert (await ledger.reserve(hold(name, "0.30"), limit, NOW))[0]
    await ledger.settle(hold("real", "0.30"), Decimal("0.10"), estimated=False)
    await ledger.settle(hold("cut", "0.30"), Decimal("0.05"), estimated=True)
    await ledger.settle(hold("refused", "0.30"), Decimal(0), estimated=False)  # released: no provider call
    assert await ledger.totals("tenant:acme", "2026-11-27", NOW) == Totals(Decimal("0.15"), Decimal(0), Decimal("0.05"))
    assert await spent(ledger, "tenant:acme", "2026-11-27") == Decimal("0.15")
    # Settling twice (or a hold already expired) never frees someone else's reservation.
    assert (await ledger.reserve(hold("next", "0.30"), limit, NOW))[0]
    await ledger.settle(hold("real", "0.30"), Decimal(0), estimated=False)
    assert (await ledger.totals("tenant:acme", "2026-11-27", NOW)).held == Decimal("0.3")


async def test_a_hold_left_by_a_dead_worker_expires(ledger):
    limit = Decimal("1.00")
    assert (await ledger.reserve(hold("orphan", "0.90", expires=NOW + 60), limit, NOW))[0]
    assert (await ledger.reserve(hold("late", "0.50"), limit, NOW + 30))[0]  # 0.90 held: admitted, last one
    assert not (await ledger.reserve(hold("refused", "0.50"), limit, NOW + 30))[0]
    admitted, before = await ledger.reserve(hold("after", "0.10"), limit, NOW + 61)
    assert admitted and before.held == Decimal("0.5")


async def test_a_due_hold_is_charged_as_estimated_when_it_expires_unsettled(ledger):
    # A 2-message request whose outcome never arrived: its reservation becomes estimated spend.
    limit = Decimal("1.00")
    lost = Hold("tenant:acme", "2026-11-27", "lost", Decimal("0.40"), NOW + 60, due=True)
    kept = Hold("tenant:acme", "2026-11-27", "kept", Decimal("0.30"), NOW + 60, due=True)
    for h in (lost, kept):
        assert (await ledger.reserve(h, limit, NOW))[0]
    await ledger.settle(kept, Decimal("0.10"), estimated=False)  # its outcome came
    assert await ledger.totals("tenant:acme", "2026-11-27", NOW + 61) == Totals(Decimal("0.5"), Decimal(0), Decimal("0.4"))
    # Settling after the expiry (an outcome later than every bound), or twice, adds nothing.
    await ledger.settle(lost, Decimal("0.20"), estimated=False)
    await ledger.settle(kept, Decimal("0.10"), estimated=False)
    assert await ledger.totals("tenant:acme", "2026-11-27", NOW + 62) == Totals(Decimal("0.5"), Decimal(0), Decimal("0.4"))


@pytest.mark.parametrize("limit, spent_usd, admitted", [("0", "0", False), ("1", "1", False), ("1", "0.999999", True)],
                         ids=["zero-limit", "spent-at-limit", "a-micro-left"])
async def test_reserve_edges(ledger, limit, spent_usd, admitted):
    await charge(ledger, "tenant:acme", "2026-11-27", spent_usd)
    assert (await ledger.reserve(hold("h", "5"), Decimal(limit), NOW))[0] is admitted


async def test_token_windows_admit_below_the_limit_and_take_corrections(ledger):
    assert await ledger.take("tpm:k:1", 80, 100, 120) == (True, 0)
    assert await ledger.take("tpm:k:1", 80, 100, 120) == (True, 80)  # below the limit: admitted
    assert await ledger.take("tpm:k:1", 1, 100, 120) == (False, 160)
    assert await ledger.incr("tpm:k:1", -150, 120) == 10  # reservations corrected to real counts
    assert await ledger.incr("tpm:k:1", 0, 120) == 10
    assert await ledger.incr("tpm:k:1", -50, 120) == 0  # never below zero
    assert await ledger.incr("tpm:k:2", 0, 120) == 0


@pytest.mark.parametrize("kind", ["disk", "redis"])
async def test_concurrent_admissions_from_two_workers_never_overbook(kind, tmp_path, shared_redis):
    import asyncio

    workers = [make_ledger(kind, tmp_path, shared_redis, name) for name in ("a", "b")]
    limit = Decimal("1.00")
    # 40 requests at once, alternating between two workers (two connections to one store).
    results = await asyncio.gather(*(workers[i % 2].reserve(hold(f"h{i}", "0.30"), limit, NOW) for i in range(40)))
    assert sum(admitted for admitted, _ in results) == 4  # 0, 0.3, 0.6, 0.9 < 1.00
    assert (await workers[0].totals("tenant:acme", "2026-11-27", NOW)).held == Decimal("1.2")


async def test_disk_ledger_keeps_plain_rows(tmp_path):
    import sqlite3

    ledger = DiskLedger(str(tmp_path / "instance"))
    assert (tmp_path / "instance").stat().st_mode & 0o777 == 0o700
    await ledger.settle(hold("h", "0"), Decimal("0.25"), estimated=True)
    with sqlite3.connect(tmp_path / "instance" / "ledger.sqlite3") as db:
        assert db.execute("SELECT scope, period, micros, estimated FROM spend").fetchall() == [
            ("tenant:acme", "2026-11-27", 250000, 250000)]


async def test_redis_outage_admits_against_known_spend_and_local_holds(tmp_path, redis_server):
    ledger = RedisLedger(redis_server.client(), DiskLedger(str(tmp_path)), fail_open=True)
    limit = Decimal("1.00")
    await charge(ledger, "tenant:t", "p", "0.50")
    assert (await ledger.reserve(Hold("tenant:t", "p", "shared", Decimal("0.10"), NOW + 600), limit, NOW))[0]
    redis_server.stop()
    # Last known spend (0.50) plus this replica's own holds made during the outage.
    first = await ledger.reserve(Hold("tenant:t", "p", "a", Decimal("0.30"), NOW + 600), limit, NOW)
    second = await ledger.reserve(Hold("tenant:t", "p", "b", Decimal("0.30"), NOW + 600), limit, NOW)
    third = await ledger.reserve(Hold("tenant:t", "p", "c", Decimal("0.30"), NOW + 600), limit, NOW)
    assert [first[0], second[0], third[0]] == [True, True, False]
    await ledger.settle(Hold("tenant:t", "p", "a", Decimal("0.30"), NOW + 600), Decimal("0.20"), estimated=True)
    assert (await ledger.totals("tenant:t", "p", NOW)).spent == Decimal("0.70")  # kept for Redis
    # Tokens per minute fall back to the local ledger.
    assert await ledger.take("tpm:k:1", 10, 100, 120) == (True, 0)
    closed = RedisLedger(redis_server.client(), DiskLedger(str(tmp_path / "closed")), fail_open=False)
    for call in (closed.reserve(Hold("tenant:t", "p", "x", Decimal("0.1"), NOW + 600), limit, NOW),
                 closed.totals("tenant:t", "p", NOW), closed.take("tpm:k:1", 1, 100, 120)):
        with pytest.raises(LedgerUnavailable):
            await call
    redis_server.start()  # empty again: what this replica spent meanwhile is written back
    totals = await ledger.totals("tenant:t", "p", NOW)
    assert (totals.spent, totals.estimated) == (Decimal("0.20"), Decimal("0.20"))


async def test_a_settlement_that_cannot_reach_redis_is_charged_once_not_again_at_expiry(tmp_path, redis_server):
    ledger = RedisLedger(redis_server.client(200), DiskLedger(str(tmp_path)), fail_open=True, timeout_s=0.2)
    due = Hold("tenant:t", "p", "h", Decimal("0.30"), NOW + 600, due=True)
    assert (await ledger.reserve(due, Decimal("1.00"), NOW))[0]
    redis_server.pause()
    try:
        await ledger.settle(due, Decimal("0.05"), estimated=False)  # queued for Redis
    finally:
        redis_server.resume()
    now = await ledger.totals("tenant:t", "p", NOW)
    assert (now.spent, now.held) == (Decimal("0.05"), Decimal("0"))
    later = await ledger.totals("tenant:t", "p", NOW + 700)  # past the hold's expiry
    assert (later.spent, later.estimated) == (Decimal("0.05"), Decimal("0"))


async def test_holds_admitted_during_an_outage_are_charged_when_settled_or_due(tmp_path, redis_server):
    ledger = RedisLedger(redis_server.client(200), DiskLedger(str(tmp_path)), fail_open=True, timeout_s=0.2)
    assert (await ledger.totals("tenant:t", "p", NOW)).spent == 0
    redis_server.pause()
    try:
        settled = Hold("tenant:t", "p", "a", Decimal("0.20"), NOW + 600, due=True)
        abandoned = Hold("tenant:t", "p", "b", Decimal("0.10"), NOW + 1, due=True)
        for hold_ in (settled, abandoned):
            assert (await ledger.reserve(hold_, Decimal("1.00"), NOW))[0]  # kept by this replica
        await ledger.totals("tenant:t", "p", NOW + 5)  # the abandoned one expires unsettled
    finally:
        redis_server.resume()
    await ledger.settle(settled, Decimal("0.20"), estimated=False)
    totals = await ledger.totals("tenant:t", "p", NOW + 5)
    assert (totals.spent, totals.estimated, totals.held) == (Decimal("0.30"), Decimal("0.10"), Decimal("0"))


class LosesOneReply:
    """A real client whose first run of ``script`` reaches Redis and loses its reply: a primary
    killed after running it, or an admission's time limit cutting the wait short."""

    def __init__(self, client, script: str):
        self._client, self._script, self.lost = client, script, 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def register_script(self, text):
        script = self._client.register_script(text)
        if text != self._script:
            return script

        async def call(keys, args):
            result = await script(keys=keys, args=args)
            if not self.lost:
                self.lost += 1
                raise ConnectionError("connection lost before the reply")
            return result

        return call


async def test_kept_spend_whose_write_lost_its_reply_is_added_once(tmp_path, redis_server):
    client = LosesOneReply(redis_server.client(200), CHARGE_ONCE)
    ledger = RedisLedger(client, DiskLedger(str(tmp_path)), fail_open=True, timeout_s=0.2)
    redis_server.pause()
    try:
        due = Hold("tenant:t", "p", "h", Decimal("0.30"), NOW + 600, due=True)
        assert (await ledger.reserve(due, Decimal("1.00"), NOW))[0]  # kept by this replica
        await ledger.settle(due, Decimal("0.10"), estimated=False)  # its spend, kept for Redis
    finally:
        redis_server.resume()
    await ledger.totals("tenant:t", "p", NOW)  # written; the reply lost: kept, to send again
    assert client.lost == 1
    assert (await ledger.totals("tenant:t", "p", NOW)).spent == Decimal("0.10")  # sent again, added once
    other = RedisLedger(redis_server.client(), DiskLedger(str(tmp_path / "other")), fail_open=False)
    assert (await other.totals("tenant:t", "p", NOW)).spent == Decimal("0.10")


async def test_an_admission_whose_reply_was_lost_is_charged_once_not_again_at_expiry(tmp_path, redis_server):
    client = LosesOneReply(redis_server.client(200), RESERVE)
    ledger = RedisLedger(client, DiskLedger(str(tmp_path)), fail_open=True, timeout_s=0.2)
    due = Hold("tenant:t", "p", "h", Decimal("0.30"), NOW + 600, due=True)
    assert (await ledger.reserve(due, Decimal("1.00"), NOW))[0]  # held in Redis; admitted as kept here
    assert client.lost == 1
    await ledger.settle(due, Decimal("0.10"), estimated=False)
    later = await ledger.totals("tenant:t", "p", NOW + 700)  # past the hold's expiry
    assert (later.spent, later.held, later.estimated) == (Decimal("0.10"), 0, 0)
