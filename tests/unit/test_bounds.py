"""Tables that client input could grow hold a bounded number of entries (docs/performance.md,
"What stays bounded"). The L1 cache and single-flight have their own tests (test_cache_core)."""

import redis

from edge_ext.auth_redis import RedisKeyStore


async def test_the_key_store_cache_holds_at_most_its_bound_under_a_flood_of_made_up_keys(shared_redis):
    store = RedisKeyStore(shared_redis.client(5000), "bounds:key:", lambda: 0.0, timeout_s=5, max_entries=8)
    for n in range(50):
        assert await store.lookup(f"{n:064x}") is None
    assert len(store) == 8
    # The newest are the ones kept: a repeated unknown key is still answered from the cache.
    assert store.cached(f"{49:064x}") == (True, None)
    assert store.cached(f"{0:064x}") == (False, None)


async def test_a_known_key_looked_up_again_is_refreshed_not_duplicated(shared_redis):
    digest = "ab" * 32
    with redis.Redis.from_url(shared_redis.url) as client:
        client.hset(f"bounds:key:{digest}", mapping={"id": "k1", "tenant": "t"})
    store = RedisKeyStore(shared_redis.client(5000), "bounds:key:", lambda: 0.0, timeout_s=5, max_entries=2)
    for _ in range(3):
        assert (await store.lookup(digest)).tenant == "t"
    await store.lookup("00" * 32)
    assert len(store) == 2 and store.cached(digest)[0]


def test_the_reply_cache_keeps_repeated_decisions_while_one_off_decisions_cycle_through_it():
    from edge_ext.extproc.convert import REPLY_CACHE_SIZE, _cached, to_response
    from edge_ext.policy.decisions import Continue

    routed = Continue(set_headers=(("x-edge-cluster", "provider_a"),), clear_route_cache=True)
    first = to_response("request_body", routed)
    for n in range(4 * REPLY_CACHE_SIZE):
        # A hold id makes each of these unique, as budgets and input estimates do in real traffic.
        to_response("request_body", Continue(set_headers=routed.set_headers, metadata=(("hold", f"{n:032x}"),)))
        if n % 64 == 0:
            assert to_response("request_body", routed) is first
    assert _cached.cache_info().currsize <= REPLY_CACHE_SIZE
