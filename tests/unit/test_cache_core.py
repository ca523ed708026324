"""Cache building blocks with an injected clock: no sleeps."""

import asyncio
import hashlib

import pytest

from edge_ext.cache.entry import Entry
from edge_ext.cache.key import cache_key, directive, namespace_for
from edge_ext.cache.memory import MemoryCache
from edge_ext.cache.singleflight import SingleFlight
from edge_ext.clock import FakeClock


def entry(body=b'{"x":1}'):
    return Entry(body, 1_700_000_000.0, "openai", "p")


def test_l1_entries_expire_with_their_ttl():
    clock = FakeClock()
    l1 = MemoryCache(10, 10_000, clock)
    l1.set("k", entry(), ttl=300)
    clock.advance(299.9)
    assert l1.get("k") is not None
    clock.advance(0.2)
    assert l1.get("k") is None and len(l1) == 0 and l1.bytes == 0


@pytest.mark.parametrize("max_entries, max_bytes, expected", [(2, 10_000, ["b", "c"]), (10, 2 * 16, ["b", "c"])],
                         ids=["bounded-by-count", "bounded-by-bytes"])
def test_l1_evicts_least_recently_used(max_entries, max_bytes, expected):
    evicted = []
    l1 = MemoryCache(max_entries, max_bytes, FakeClock(), on_evict=lambda: evicted.append(1))
    for key in ("a", "b", "c"):
        l1.set(key, entry(b"x" * 15), ttl=60)
    assert [k for k in ("a", "b", "c") if l1.get(k)] == expected
    assert len(evicted) == 1


def test_l1_refuses_an_entry_bigger_than_itself():
    l1 = MemoryCache(10, 100, FakeClock())
    l1.set("k", entry(b"x" * 200), ttl=60)
    assert l1.get("k") is None


@pytest.mark.parametrize("body", [b"{}", b"x" * 5000], ids=["small-raw", "large-compressed"])
def test_entry_round_trips_its_wire_form(body):
    e = entry(body)
    wire = e.encode()
    assert Entry.decode(wire) == e
    assert (len(wire) < len(body)) == (len(body) > 1024)


@pytest.mark.parametrize("garbage", [b"", b"r", b"zzz", b"r{bad json\n{}", b"q" * 10], ids=["empty", "header-only", "bad-zlib", "bad-meta", "unknown-tag"])
def test_corrupt_entries_are_misses(garbage):
    assert Entry.decode(garbage) is None


def test_stream_and_json_requests_share_a_key_but_tenants_do_not():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    a = namespace_for({"authorization": "Bearer a"}, None)
    b = namespace_for({"authorization": "Bearer b"}, None)
    assert cache_key(a, "openai", body) == cache_key(a, "openai", {**body, "stream": True, "stream_options": {"include_usage": True}})
    assert cache_key(a, "openai", body) != cache_key(b, "openai", body)
    assert cache_key(a, "openai", body) != cache_key(a, "openai", {**body, "temperature": 0.5})
    assert namespace_for({"authorization": "Bearer a"}, "team") == namespace_for({}, "team")


def test_keys_are_the_ones_stored_entries_were_written_under():
    # Entries outlive a release: the key's text must not change (sorted keys, compact, UTF-8 as is).
    body = {"temperature": 0, "model": "m", "messages": [{"role": "user", "content": "héllo \u2028 \"q\""}],
            "top_p": 0.5, "stop": ["a", None], "user": "u"}
    assert cache_key("t-x", "openai", body) == "t-x:" + hashlib.sha256(
        "t-x\0openai\0{\"messages\":[{\"content\":\"héllo \u2028 \\\"q\\\"\",\"role\":\"user\"}],\"model\":\"m\","
        "\"stop\":[\"a\",null],\"temperature\":0,\"top_p\":0.5}".encode()).hexdigest()


BODY0 = {"model": "m", "messages": [], "temperature": 0}
DIRECTIVES = [
    pytest.param({}, BODY0, (True, True, "miss", None), id="temperature-zero-cached"),
    pytest.param({}, {**BODY0, "temperature": 0.7}, (False, False, "bypass", None), id="sampling-bypassed"),
    pytest.param({"x-edge-cache-enable": "true"}, {**BODY0, "temperature": 0.7}, (True, True, "miss", None), id="opt-in-header"),
    pytest.param({"cache-control": "no-store"}, BODY0, (False, False, "bypass", None), id="no-store"),
    pytest.param({"cache-control": "no-cache"}, BODY0, (False, True, "bypass", None), id="no-cache-refreshes"),
    pytest.param({"x-edge-cache-ttl": "60"}, BODY0, (True, True, "miss", 60.0), id="ttl-header"),
    pytest.param({"x-edge-cache-ttl": "99999999"}, BODY0, (True, True, "miss", 86400.0), id="ttl-capped"),
    pytest.param({"x-edge-cache-ttl": "0"}, BODY0, (False, False, "bypass", None), id="ttl-zero-bypasses"),
    pytest.param({"x-edge-cache-ttl": "soon"}, BODY0, (True, True, "miss", None), id="ttl-not-a-number-ignored"),
    pytest.param({"cache-control": "no-cache", "x-edge-cache-ttl": "60"}, BODY0, (False, True, "bypass", 60.0),
                 id="no-cache-refreshes-with-a-ttl"),
    pytest.param({}, {**BODY0, "n": 2}, (False, False, "bypass", None), id="n-greater-than-one"),
]


@pytest.mark.parametrize("headers, body, expected", DIRECTIVES)
def test_directive(headers, body, expected):
    d = directive(headers, body, default="temperature_zero", opt_in_header="x-edge-cache-enable",
                  allow_multiple_choices=False, max_ttl=86400)
    assert (d.lookup, d.store, d.status, d.ttl) == expected


async def test_single_flight_followers_get_the_leaders_entry():
    flights = SingleFlight(max_wait=5)
    assert flights.lead("k") and not flights.lead("k")
    followers = [asyncio.ensure_future(flights.follow("k")) for _ in range(3)]
    await asyncio.sleep(0)
    flights.finish("k", entry())
    assert [await f for f in followers] == [entry()] * 3
    assert len(flights) == 0


async def test_single_flight_followers_give_up_after_max_wait():
    flights = SingleFlight(max_wait=0.01)
    flights.lead("k")
    assert await flights.follow("k") is None
    flights.finish("k", None)
