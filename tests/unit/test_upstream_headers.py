"""Which client headers reach a provider: an allow-list per provider kind, the rest removed."""

import pytest

from edge_ext.cache.key import cache_key
from edge_ext.config import ConfigInvalid, parse_config
from edge_ext.providers.headers import FORWARDED, answer_variant
from edge_ext.providers.base import upstream_request
from edge_ext.providers.registry import adapter_for

CONFIG = """\
providers:
  - {name: oa, kind: openai, base_url: "https://api.openai.com", models: [m]}
  - {name: compat, kind: openai_compatible, base_url: "http://10.0.0.9:8000", models: [m]}
  - {name: az, kind: azure_openai, base_url: "https://x.openai.azure.com", models: [m], api_version: "2024-10-21"}
  - {name: an, kind: anthropic, base_url: "https://api.anthropic.com", models: [m], anthropic_version: "2023-06-01",
     anthropic_betas: [prompt-tools-2025-01-01, output-long-2025-02-19]}
"""
PROVIDERS = {p.name: p for p in parse_config(CONFIG).providers}
OWN_CREDENTIAL = {"oa": "authorization", "compat": "authorization", "az": "api-key", "an": "x-api-key"}

# What a client may send to change who pays, what the API does, or how Envoy behaves.
HOSTILE = {
    "openai-organization": "org-attacker",
    "openai-project": "proj-attacker",
    "anthropic-beta": "unlisted-beta-2099-01-01",
    "anthropic-version": "2099-01-01",
    "cookie": "session=attacker",
    "proxy-authorization": "Basic YTpi",
    "authorization": "Bearer client-key",
    "x-api-key": "client-key",
    "api-key": "client-key",
    "x-envoy-retry-on": "5xx",
    "x-envoy-max-retries": "9",
    "x-envoy-upstream-rq-timeout-ms": "1",
    "x-envoy-hedge-on-per-try-timeout": "true",
    "x-envoy-anything": "1",
    "x-forwarded-for": "203.0.113.7",
    "x-envoy-external-address": "203.0.113.7",
    "x-stainless-lang": "python",
    "accept-encoding": "gzip, br",
    "cache-control": "no-store",
    "x-edge-cache-ttl": "60",
    "x-mock-status": "500",
}
ALLOWED = {"content-type": "application/json", "content-length": "42", "accept": "application/json",
           "user-agent": "OpenAI/Python 1.0", "x-request-id": "rid", "traceparent": "00-ab-cd-01", "tracestate": "v=1"}
CLIENT = {":method": "POST", ":path": "/v1/chat/completions", ":authority": "edge", **HOSTILE, **ALLOWED}


def upstream(name, headers=CLIENT):
    provider = PROVIDERS[name]
    return upstream_request(adapter_for(provider.kind), provider, "sk-edge-own", "m", headers)


@pytest.mark.parametrize("name", list(PROVIDERS))
@pytest.mark.parametrize("header", list(HOSTILE))
def test_a_client_header_never_reaches_the_provider_with_its_value(name, header):
    request = upstream(name)
    set_headers = dict(request.set_headers)
    if header in set_headers:
        # Only the edge's own value: the provider's credential, the configured API version.
        assert set_headers[header] != HOSTILE[header]
        assert header in (OWN_CREDENTIAL[name], "anthropic-version", "accept-encoding")
    else:
        assert header in request.remove_headers


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_framing_negotiation_and_trace_headers_pass_and_pseudo_headers_are_left_to_envoy(name):
    request = upstream(name)
    assert not set(ALLOWED) & set(request.remove_headers)
    assert not [h for h in request.remove_headers if h.startswith(":") or h == "host"]
    assert set(ALLOWED) <= FORWARDED
    assert dict(request.set_headers)["accept-encoding"] == "identity"


@pytest.mark.parametrize("name, own", [
    ("oa", {"authorization": "Bearer sk-edge-own"}),
    ("compat", {"authorization": "Bearer sk-edge-own"}),
    ("az", {"api-key": "sk-edge-own"}),
    ("an", {"x-api-key": "sk-edge-own", "anthropic-version": "2023-06-01"}),
])
def test_each_kind_sets_its_own_credentials_and_removes_every_other_kinds(name, own):
    # Nothing from the client: a retry's header map may still hold another provider's headers.
    request = upstream(name, {":path": "/v1/chat/completions"})
    assert own.items() <= dict(request.set_headers).items()
    others = {"authorization", "x-api-key", "api-key", "anthropic-version", "anthropic-beta"} - set(own)
    assert others <= set(request.remove_headers)


@pytest.mark.parametrize("sent, forwarded", [
    ("output-long-2025-02-19", "output-long-2025-02-19"),
    ("unlisted-beta, prompt-tools-2025-01-01 ,output-long-2025-02-19,prompt-tools-2025-01-01",
     "prompt-tools-2025-01-01,output-long-2025-02-19"),
    ("unlisted-beta", None),
    ("", None),
], ids=["listed", "listed-kept-in-order-unlisted-dropped", "unlisted-only", "empty"])
def test_only_the_betas_the_provider_lists_are_forwarded(sent, forwarded):
    request = upstream("an", {"anthropic-beta": sent})
    assert dict(request.set_headers).get("anthropic-beta") == forwarded
    assert ("anthropic-beta" in request.remove_headers) == (forwarded is None)


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


@pytest.mark.parametrize("a, b, same", [
    ({}, {}, True),
    ({"anthropic-beta": "x,y"}, {"anthropic-beta": "y, x,x"}, True),
    ({}, {"anthropic-beta": "x"}, False),
    ({"anthropic-beta": "x"}, {"anthropic-beta": "y"}, False),
    ({}, {"openai-organization": "org-1", "user-agent": "other"}, True),
], ids=["none", "same-betas-any-order", "beta-vs-none", "other-beta", "headers-that-are-not-forwarded"])
def test_forwarded_headers_that_change_the_answer_are_part_of_the_cache_key(a, b, same):
    assert (cache_key("t", "openai", BODY, answer_variant(a)) == cache_key("t", "openai", BODY, answer_variant(b))) == same


def test_a_request_without_such_headers_keeps_the_key_it_always_had():
    assert cache_key("t", "openai", BODY, answer_variant({"user-agent": "x"})) == cache_key("t", "openai", BODY)


def test_anthropic_betas_belong_to_anthropic_providers():
    with pytest.raises(ConfigInvalid, match="anthropic_betas is for kind anthropic"):
        parse_config('providers: [{name: a, kind: openai, base_url: "https://x", models: [m], anthropic_betas: [b]}]')
