"""Which request headers reach a provider: an allow-list, and everything else removed.

A provider is called with the edge's own key, so any header a client could pass through is a
choice made on the edge's account: ``openai-organization`` and ``openai-project`` pick who is
billed, ``anthropic-beta`` and ``anthropic-version`` change what the API does, ``cookie`` and
``proxy-authorization`` are credentials of their own, ``x-envoy-*`` steer Envoy. Naming what
may pass (and removing every other header the processor was shown) closes the whole class:
a header invented tomorrow is removed too.

Envoy's route config can only remove headers by name; the processor sees every request header
and names them all in its header mutation. Envoy's router adds a few of its own after that
(``x-envoy-expected-rq-timeout-ms``, ``x-envoy-attempt-count``, ``x-envoy-original-host``),
overwriting any client value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from edge_ext.message import Headers

# Client headers any provider may see: the body's framing and type, content negotiation and
# trace context. Nothing here changes what a provider answers.
FORWARDED = frozenset({
    "content-type", "content-length", "accept", "user-agent",
    "x-request-id", "traceparent", "tracestate",
    # Envoy's router sets it on every attempt, over any client value; the failover clusters'
    # filter reads it.
    "x-envoy-attempt-count",
    # Envoy sets it from the connection (use_remote_address), over any client value; without
    # it Envoy 1.40 finds no route when the processor's reply clears the route cache.
    "x-forwarded-proto",
})

# Set by edge-ext for some provider kind (credentials, the API version, betas): removed from a
# request wherever its target does not set them, seen or not. A retry starts from the header map
# the previous attempt left, which may hold another provider's.
PROVIDER_OWNED = ("authorization", "x-api-key", "api-key", "anthropic-version", "anthropic-beta")

# The processor reads answers (prices, translates and caches them) and decodes no content coding.
IDENTITY = (("accept-encoding", "identity"),)

# Forwarded client headers that change the answer: their values are part of the cache key.
ANSWER_HEADERS = ("anthropic-beta",)


def upstream_headers(client_headers: Iterable[str], own: Headers) -> tuple[Headers, tuple[str, ...]]:
    """The headers a provider gets: ``own`` (set by its adapter) over the allowed client headers.

    Returns (set, remove): every header name the client sent that is neither allowed nor set here
    is removed, as is every provider-owned header the target does not set.
    """
    return _upstream_headers(tuple(client_headers), own)


# Clients send the same header names request after request (one set per SDK and version), and a
# provider's own headers repeat too: the sets are built once per combination. Bounded: a client
# inventing header names evicts only other entries.
@lru_cache(maxsize=256)
def _upstream_headers(client_headers: tuple[str, ...], own: Headers) -> tuple[Headers, tuple[str, ...]]:
    own = (*own, *IDENTITY)
    mine = {name for name, _ in own}
    # Pseudo-headers and host are Envoy's: not removable, and rewritten by the route.
    seen = {name for name in client_headers if not name.startswith(":") and name != "host"}
    remove = (seen - FORWARDED - mine) | (set(PROVIDER_OWNED) - mine)
    # Sorted: equal requests give equal decisions, which the servicer reuses.
    return own, tuple(sorted(remove))


def beta_tokens(value: str) -> list[str]:
    """``anthropic-beta`` is a comma-separated list; order kept, duplicates dropped."""
    return list(dict.fromkeys(token.strip() for token in value.split(",") if token.strip()))


def answer_variant(headers: Mapping[str, str]) -> Headers:
    """The client's answer-changing headers, normalised, for the cache key."""
    variant = []
    for name in ANSWER_HEADERS:
        value = headers.get(name)
        if value:
            variant.append((name, ",".join(sorted(beta_tokens(value)))))
    return tuple(variant)
