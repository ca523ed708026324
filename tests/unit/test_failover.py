"""In-flight failover without gRPC: plans, the per-attempt re-shaping, and settling who answered."""

import json

import pytest

from edge_ext.clock import FakeClock
from edge_ext.config import parse_config
from edge_ext.errors import FailoverRefused
from edge_ext.extproc.attributes import attempt_provider, route_metadata, upstream_of
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.policy.attempt import AttemptState, AttemptStep
from edge_ext.policy.decisions import Continue, Mode, Respond
from edge_ext.policy.grant import AttemptGrants
from edge_ext.policy.engine import Policy
from edge_ext.policy.route_step import CLUSTER_HEADER
from edge_ext.routing.breaker import BreakerState
from edge_ext.routing.plan import all_plans, cluster_for
from edge_ext.routing.router import Router
from edge_ext.routing.shared_state import MemoryBreakerStore

CONFIG = """\
routing: {{strategy: failover, max_attempts: {attempts}}}
providers:
  - {{name: alpha, kind: openai, base_url: "http://127.0.0.1:9001", models: [m, solo], priority: 0}}
  - {{name: beta, kind: anthropic, base_url: "http://127.0.0.1:9002", model_map: {{m: claude-x}}, priority: 1}}
  - {{name: gamma, kind: azure_openai, base_url: "http://127.0.0.1:9003", model_map: {{m: gpt-dep}}, api_version: "2024-10-21",
      priority: 1}}
  - {{name: delta, kind: openai, base_url: "http://127.0.0.1:9004", models: [m], priority: -1, api_key_env: NO_SUCH_KEY}}
"""
KEYS = {"alpha": "sk-alpha", "beta": "sk-beta", "gamma": "az-gamma", "delta": None}


def config(attempts=3):
    return parse_config(CONFIG.format(attempts=attempts))


def router(attempts=3, clock=None):
    clock = clock or FakeClock()
    return Router(config(attempts), KEYS, MemoryBreakerStore(clock=clock))


# -- plans ------------------------------------------------------------------------------------
@pytest.mark.parametrize("plan, expected", [
    (("alpha",), "provider_alpha"),
    (("alpha", "beta"), "failover_alpha_beta"),
    (("beta", "alpha", "gamma"), "failover_beta_alpha_gamma"),
], ids=["single-provider-uses-its-own-cluster", "two", "three"])
def test_cluster_names(plan, expected):
    assert cluster_for(plan, f"provider_{plan[0]}") == expected


# Model m has 4 providers: 4 first choices, times the ordered selections of the other 3 that fit.
@pytest.mark.parametrize("attempts, count", [(1, 0), (2, 4 * 3), (3, 4 * (3 + 3 * 2)), (4, 4 * (3 + 3 * 2 + 3 * 2 * 1))])
def test_every_plan_is_rendered_once(attempts, count):
    plans = all_plans(config(attempts))
    assert len(plans) == len(set(plans)) == count
    assert all(2 <= len(p) <= attempts for p in plans)


def test_any_order_of_fallbacks_has_its_cluster():
    # The strategy orders the fallbacks: the next cheapest, the next fastest, the next in turn.
    plans = set(all_plans(config(3)))
    assert {("gamma", "delta", "alpha"), ("gamma", "alpha", "delta"), ("beta", "alpha"), ("beta", "gamma")} <= plans


# -- the router's plan ------------------------------------------------------------------------
def test_fallbacks_follow_the_strategys_order():
    cfg = config(3).model_copy(update={"routing": config(3).routing.model_copy(update={"strategy": "round_robin"})})
    r = Router(cfg, KEYS, MemoryBreakerStore(clock=FakeClock()))
    plans = [r.pick("m").plan for _ in range(3)]
    # delta has no key; the rotation decides the first choice and the fallbacks alike.
    assert {p[0] for p in plans} == {"alpha", "beta", "gamma"}
    for plan in plans:
        assert len(plan) == 3 and set(plan) == {"alpha", "beta", "gamma"}
    assert len(set(plans)) == 3


def test_plan_skips_keyless_and_unhealthy_fallbacks_and_is_capped():
    clock = FakeClock()
    r = router(3, clock)
    # delta has no key: never a fallback. alpha is the failover strategy's pick.
    assert r.pick("m").plan == ("alpha", "beta", "gamma")
    assert r.pick("m").cluster == "failover_alpha_beta_gamma"
    r.force("beta", BreakerState.OPEN)
    assert r.pick("m").plan == ("alpha", "gamma")
    r.force("gamma", BreakerState.HALF_OPEN)  # a half-open provider is probed as a first choice only
    assert r.pick("m").plan == ("alpha",) and r.pick("m").cluster == "provider_alpha"
    assert router(2).pick("m").plan == ("alpha", "beta")
    assert router(1).pick("m").plan == ("alpha",)
    assert router(3).pick("solo").plan == ("alpha",)


# -- one retry attempt ------------------------------------------------------------------------
GRANTS = AttemptGrants(KEYS)


def step():
    return AttemptStep(router(), GRANTS)


def route_for(first, plan, model="m"):
    """The forwarded metadata the router-level step writes for a plan with fallbacks."""
    return {"provider": first, "model": model, "api": "openai", **dict(GRANTS.metadata(first, model, plan))}


def attempt(step, provider, body, first="alpha", headers=None):
    st = AttemptState()
    hdrs = headers or {":path": "/v1/chat/completions", "authorization": "Bearer sk-alpha", "content-length": str(len(body))}
    plan = (first,) + ((provider,) if provider != first else ("beta",))
    decision = step.on_headers(st, hdrs, provider, route_for(first, plan))
    assert decision == Continue(mode=Mode())  # asks for the body, nothing else
    return step.on_body(st, body)


@pytest.mark.parametrize("route", [
    {"provider": "alpha", "model": "m", "api": "openai"},
    {**route_for("alpha", ("alpha", "beta")), "grant": "0" * 64},
    {**route_for("alpha", ("alpha", "beta")), "model": "other"},
    {**route_for("alpha", ("alpha", "gamma"))},
    {**route_for("alpha", ("alpha", "beta")), "plan": "alpha,gamma"},
    {**dict(AttemptGrants({"alpha": "guess"}).metadata("alpha", "m", ("alpha", "beta"))), "provider": "alpha", "model": "m"},
], ids=["no-grant", "forged-grant", "grant-for-another-model", "beta-not-in-the-plan", "plan-changed-after-signing",
        "signed-with-a-guessed-key"])
def test_an_attempt_without_a_valid_grant_gets_no_credentials(route):
    """A stream that looks like a failover attempt but was not started by an authenticated request
    (any peer on the processor socket could send one) is refused before any credential is named."""
    decision = step().on_headers(AttemptState(), {":path": "/v1/chat/completions"}, "beta", route)
    assert isinstance(decision, Respond) and decision.details == "edge_ext_failover_refused"
    assert b"sk-" not in decision.body


OPENAI_BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}).encode()


def test_an_attempt_back_at_the_first_provider_still_gets_its_own_credentials():
    left = {":path": "/v1/messages", "x-api-key": "sk-beta", "anthropic-version": "2023-06-01"}
    decision = attempt(step(), "alpha", OPENAI_BODY, headers=left)
    assert dict(decision.set_headers)["authorization"] == "Bearer sk-alpha" and decision.body is None
    assert {"x-api-key", "anthropic-version"} <= set(decision.remove_headers)


def test_an_attempt_without_the_requests_metadata_is_refused():
    decision = step().on_headers(AttemptState(), {":path": "/v1/chat/completions"}, "beta", {})
    assert isinstance(decision, Respond) and decision.details == "edge_ext_failover_refused"


def test_an_openai_request_is_reshaped_for_an_anthropic_provider():
    decision = attempt(step(), "beta", OPENAI_BODY)
    headers = dict(decision.set_headers)
    assert headers[":path"] == "/v1/messages" and headers[":authority"] == "127.0.0.1:9002"
    assert headers["x-api-key"] == "sk-beta" and "anthropic-version" in headers
    assert "authorization" in decision.remove_headers
    body = json.loads(decision.body)
    assert body["model"] == "claude-x" and body["max_tokens"] == 9 and body["messages"][0]["role"] == "user"
    assert headers["content-length"] == str(len(decision.body))


def test_an_attempt_removes_what_an_earlier_attempt_set_for_its_provider():
    # All attempts share Envoy's header map: the third starts from the second's Anthropic headers.
    left = {":path": "/v1/messages", "x-api-key": "sk-beta", "anthropic-version": "2023-06-01"}
    decision = attempt(step(), "gamma", OPENAI_BODY, headers=left)
    headers = dict(decision.set_headers)
    assert headers[":path"] == "/openai/deployments/gpt-dep/chat/completions?api-version=2024-10-21"
    assert headers["api-key"] == "az-gamma"
    assert {"x-api-key", "anthropic-version", "authorization"} <= set(decision.remove_headers)


def test_an_anthropic_shaped_body_is_reshaped_for_an_openai_provider():
    body = json.dumps({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                       "stream": True}).encode()
    decision = attempt(step(), "alpha", body, first="beta")
    out = json.loads(decision.body)
    assert out["model"] == "m" and out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert dict(decision.set_headers)["authorization"] == "Bearer sk-alpha"
    assert {"x-api-key", "anthropic-version"} <= set(decision.remove_headers)


def test_an_attempt_for_a_provider_outside_the_group_is_refused():
    decision = attempt(step(), "nobody", OPENAI_BODY)
    # A bare message: Envoy's local_reply_config puts it in the client's shape.
    assert isinstance(decision, Respond) and decision.status == FailoverRefused.status
    assert decision.body.startswith(b"provider 'nobody' cannot") and decision.details == "edge_ext_failover_refused"


def test_a_body_the_next_api_cannot_express_is_refused_not_forwarded():
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 3}).encode()
    decision = attempt(step(), "beta", body)
    assert isinstance(decision, Respond) and decision.details == "edge_ext_failover_refused"


# -- settling who answered --------------------------------------------------------------------
@pytest.fixture
def policy():
    return Policy(config(3), FakeClock(), KEYS)


def routed(policy, body=OPENAI_BODY):
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions"}, False)
    decision = policy.on_request_body(st, body)
    assert dict(decision.set_headers)[CLUSTER_HEADER] == "failover_alpha_beta_gamma"
    return st


def test_an_answer_from_the_second_provider_is_read_in_its_api_and_blames_the_first(policy):
    st = routed(policy)
    decision = policy.on_response_headers(st, 200, {}, "via_upstream", served="beta", attempts=2)
    assert ("x-edge-provider", "beta") in decision.set_headers and ("provider", "beta") in decision.metadata
    assert st.provider == "beta" and st.retried == ("alpha",) and st.upstream_model == "claude-x"
    assert st.upstream_api == "anthropic" and not st.same_api
    assert policy.router.states()["alpha"] is BreakerState.CLOSED  # one failure, threshold 5
    for _ in range(4):
        st = routed(policy)
        policy.on_response_headers(st, 200, {}, "via_upstream", served="beta", attempts=2)
    assert policy.router.states()["alpha"] is BreakerState.OPEN


def test_an_unnamed_answer_is_placed_by_the_attempt_count(policy):
    st = routed(policy)
    policy.on_response_headers(st, 503, {}, "upstream_reset_before_response_started{connection_failure}", served="", attempts=3)
    assert st.provider == "gamma" and st.retried == ("alpha", "beta")


def test_the_routed_request_signs_its_plan_and_the_attempt_step_accepts_it(policy):
    st = policy.new_stream()
    policy.on_request_headers(st, {":method": "POST", ":path": "/v1/chat/completions"}, False)
    decision = policy.on_request_body(st, OPENAI_BODY)
    route = dict(decision.metadata)
    assert route["plan"] == "alpha,beta,gamma" and len(route["grant"]) == 64
    for provider in ("beta", "gamma"):
        assert policy.grants.allows(route, provider)
    assert not policy.grants.allows(route, "delta")


def test_a_first_attempt_answer_changes_nothing(policy):
    st = routed(policy)
    decision = policy.on_response_headers(st, 200, {}, "via_upstream", served="alpha", attempts=1)
    assert not any(name == "x-edge-provider" for name, _ in decision.set_headers)
    assert st.retried == () and st.provider == "alpha"


# -- what Envoy sends ---------------------------------------------------------------------------
def with_attributes(message: pb.ProcessingRequest, **fields) -> pb.ProcessingRequest:
    attrs = message.attributes["envoy.filters.http.ext_proc"]
    for key, value in fields.items():
        if isinstance(value, str):
            attrs.fields[key].string_value = value
        else:
            attrs.fields[key].number_value = value
    return message


HOST = 'filter_metadata { key: "edge_ext" value { fields { key: "provider" value { string_value: "beta" } } } } '


def test_attempt_streams_are_told_apart_by_the_endpoint_metadata():
    plain = pb.ProcessingRequest(request_headers=pb.HttpHeaders())
    assert attempt_provider(plain) is None
    tagged = with_attributes(pb.ProcessingRequest(request_headers=pb.HttpHeaders()), **{"xds.upstream_host_metadata": HOST})
    assert attempt_provider(tagged) == "beta"
    tagged.metadata_context.filter_metadata["edge_ext"].update({"provider": "alpha", "model": "m", "api": "openai"})
    assert route_metadata(tagged) == {"provider": "alpha", "model": "m", "api": "openai"}
    assert route_metadata(plain) == {}


def test_the_response_names_who_answered_and_after_how_many_attempts():
    message = with_attributes(pb.ProcessingRequest(response_headers=pb.HttpHeaders()),
                              **{"xds.upstream_host_metadata": HOST, "upstream.request_attempt_count": 2.0})
    assert upstream_of(message) == ("beta", 2)
    assert upstream_of(pb.ProcessingRequest(response_headers=pb.HttpHeaders())) == ("", 1)


# -- embeddings: only OpenAI-API providers, re-shaped by the operation in the metadata ------------
EMBED_BODY = json.dumps({"model": "m", "input": ["a", "b"]}).encode()


def test_an_embeddings_plan_skips_providers_without_the_api():
    accepts = lambda provider: provider.kind != "anthropic"  # noqa: E731
    assert router().pick("m", accepts=accepts).plan == ("alpha", "gamma")


def test_an_embeddings_attempt_is_reshaped_for_the_next_openai_api_provider():
    st = AttemptState()
    route = {**route_for("alpha", ("alpha", "gamma")), "operation": "embeddings"}
    hdrs = {":path": "/v1/embeddings", "authorization": "Bearer sk-alpha", "content-length": str(len(EMBED_BODY))}
    assert step().on_headers(st, hdrs, "gamma", route) == Continue(mode=Mode())
    decision = step().on_body(st, EMBED_BODY)
    headers = dict(decision.set_headers)
    assert headers[":path"] == "/openai/deployments/gpt-dep/embeddings?api-version=2024-10-21"
    assert headers["api-key"] == "az-gamma" and "authorization" in decision.remove_headers
    assert json.loads(decision.body) == {"model": "gpt-dep", "input": ["a", "b"]}


def test_an_embeddings_attempt_at_an_anthropic_provider_is_refused_not_forwarded():
    st = AttemptState()
    route = {**route_for("alpha", ("alpha", "beta")), "operation": "embeddings"}
    step().on_headers(st, {":path": "/v1/embeddings"}, "beta", route)
    decision = step().on_body(st, EMBED_BODY)
    assert isinstance(decision, Respond) and decision.details == "edge_ext_failover_refused"
