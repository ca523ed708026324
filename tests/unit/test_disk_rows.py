"""The disk L2 against rows planted in its SQLite file, as whoever can write the directory would:
nothing is unpickled, no file outside the cache is read or deleted. (The disk budget ledger is a
plain SQLite table of integers: it has nothing to unpickle.)"""

import os
import pickle
import sqlite3

import pytest

from edge_ext.cache.disk import PlainDisk, UnsafeRow
from edge_ext.cache.shared import DiskStore, StoreError

MODE_BINARY, MODE_PICKLE = 2, 4


class Payload:
    """Pickled, it creates a directory when loaded: proof that a row was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def plant(directory, key, **columns):
    """Overwrite the columns of ``key``'s row directly in diskcache's database."""
    with sqlite3.connect(directory / "cache.db") as db:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        changed = db.execute(f"UPDATE Cache SET {assignments} WHERE key = ?", (*columns.values(), key)).rowcount
    assert changed == 1


@pytest.fixture
def store(tmp_path):
    opened = DiskStore(str(tmp_path / "l2"), 10 * 1024 * 1024)
    yield opened
    opened.close()


async def test_bytes_round_trip_and_the_lock_is_a_claim(store):
    await store.set("k", b"\x00entry", ttl=60)
    assert await store.get("k") == b"\x00entry"
    assert await store.lock("k", 5) is True and await store.lock("k", 5) is False
    await store.unlock("k")
    assert await store.lock("k", 5) is True


async def test_a_lock_queued_behind_another_writer_is_a_store_error_and_its_late_claim_is_dropped(store, tmp_path):
    import asyncio

    # Another process's write transaction holds SQLite's one writer slot: the claim waits in
    # SQLite's busy handler. The request must not (Envoy's message deadline): it fetches alone.
    writer = sqlite3.connect(tmp_path / "l2" / "cache.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        async with asyncio.timeout(10):  # unbounded, the claim would wait out SQLite's 60 s
            with pytest.raises(StoreError, match="lock slower than 100 ms"):
                await store.lock("k", 30)
    finally:
        writer.execute("COMMIT")
        writer.close()
    # The claim's thread takes the lock once the writer is gone; nobody holds it: dropped.
    async with asyncio.timeout(10):
        while store._late:  # the claim, then its unlock
            await asyncio.sleep(0.01)
    assert await store.get("lock:k") is None and await store.lock("k", 30) is True

async def test_large_values_stay_inline_never_in_a_file(store, tmp_path):
    await store.set("big", b"x" * 200_000, ttl=60)
    assert await store.get("big") == b"x" * 200_000
    assert [p.name for p in (tmp_path / "l2").iterdir() if p.is_dir()] == []


@pytest.mark.parametrize("columns", [
    pytest.param(lambda m: {"mode": MODE_PICKLE, "value": pickle.dumps(Payload(m))}, id="pickled-value-inline"),
    pytest.param(lambda m: {"mode": MODE_PICKLE, "value": None, "filename": "../payload.pkl"}, id="pickled-value-in-a-file"),
    pytest.param(lambda m: {"mode": MODE_BINARY, "value": None, "filename": "../secret.txt"}, id="value-file-outside-the-cache"),
    pytest.param(lambda m: {"value": "text, not bytes"}, id="text-value"),
])
async def test_a_planted_row_is_a_miss_and_never_runs(store, tmp_path, columns):
    marker = tmp_path / "pwned"
    (tmp_path / "payload.pkl").write_bytes(pickle.dumps(Payload(marker)))
    (tmp_path / "secret.txt").write_text("outside the cache")
    await store.set("k", b"entry", ttl=60)
    plant(tmp_path / "l2", "k", **columns(marker))
    with pytest.raises(StoreError, match="never writes"):
        await store.get("k")
    assert not marker.exists()
    # The next answer replaces the row; the file it named is left alone.
    await store.set("k", b"fresh", ttl=60)
    assert await store.get("k") == b"fresh"
    assert (tmp_path / "secret.txt").exists() and (tmp_path / "payload.pkl").exists()


@pytest.mark.parametrize("call", [
    pytest.param(lambda d: d.put(("tuple", "key")), id="non-str-key"),
    pytest.param(lambda d: d.put(b"bytes-key"), id="bytes-key"),
    pytest.param(lambda d: d.store({"a": 1}, False), id="dict-value"),
    pytest.param(lambda d: d.store("text", False), id="str-value"),
    pytest.param(lambda d: d.store(1.5, False), id="float-value"),
    pytest.param(lambda d: d.store(True, False), id="bool-value"),
    pytest.param(lambda d: d.store(2**70, False), id="huge-int-value"),
    pytest.param(lambda d: d.filename(), id="value-file"),
])
def test_nothing_is_written_that_would_need_pickle_or_a_file(tmp_path, call):
    with pytest.raises(TypeError):
        call(PlainDisk(str(tmp_path)))


def test_a_pickled_key_is_refused_not_loaded(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafeRow):
        PlainDisk(str(tmp_path)).get(pickle.dumps(Payload(marker)), False)
    assert not marker.exists()
