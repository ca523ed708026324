"""Envoy clusters for in-flight failover: one aggregate cluster per plan (edge_ext.routing.plan).

Seen with Envoy 1.40: a route retry inside an aggregate cluster goes to its next member when the
retry priority is ``previous_priorities``; an ext_proc filter among the aggregate cluster's own
upstream filters runs once per attempt (the same filter on the member clusters does not run),
sees the attempt's endpoint metadata and the request's dynamic metadata. The request body is
replayed from the router's buffer for every attempt, but the header map is shared: an attempt
starts from the headers the previous one left. That filter re-shapes a retry for its provider. A matcher skips it on the first attempt, which the
router-level filter has already shaped, so a request that does not fail over pays no extra
message.
"""

from __future__ import annotations

import copy
from typing import Any

from edge_ext.config.models import Config
from edge_ext.policy.refusal import REFUSAL_WATCH
from edge_ext.routing.plan import all_plans, cluster_for

_ATTEMPT_COUNT = "x-envoy-attempt-count"

# A processor stream that no worker has answered yet is started again on another worker: a
# worker that is gone (killed, restarting) refuses the connection or resets the stream before
# its first reply, and one stopping (a reload's predecessor) ends a stream it has not begun with
# CANCELLED or UNAVAILABLE; nothing was decided on it. A stream a worker already answered is
# never replayed (Envoy retries only before the response starts), so no decision is taken twice.
STREAM_START_RETRY = {
    "retry_on": "connect-failure,refused-stream,reset,cancelled,unavailable",
    "num_retries": 4,
    # The back-off before retry n is drawn from [0, (2^n - 1) x 25 ms): under 25, 75, 175 and
    # 375 ms for these four. The processor cluster picks by least requests, and a worker just
    # killed has none in flight, so every pick (previous_hosts re-picks by the same rule) lands on
    # it until outlier detection's ejection of it reaches Envoy's worker thread (worker -> main
    # thread -> every worker thread: tens of milliseconds on a busy box). The retries outwait
    # that: with 2 retries from 1 ms, a request started right after a kill failed in 7 of 60
    # loaded runs of the kill test; from 20 ms, in about 1 of 72, and 4 passing runs in 100 needed
    # their last retry. (Round robin's re-pick would be the next worker, but round robin gives a
    # worker held up by a large body its turn of new streams: docs/envoy.md.) A retry waits only
    # after a failure, so healthy traffic pays nothing for the longer wait.
    # Envoy also makes the longest back-off the stream's per-try timeout, which starts when Envoy
    # half-closes the stream: after the last reply it needs (an immediate response included), or
    # when the client leaves. A worker ends the stream when it reads that, after the work in hand:
    # under load, often more than a few milliseconds later. Timed out then, the stream was reset,
    # counted against a healthy worker (outlier detection ejected it for seconds: 27 timeouts and
    # 5 ejections in 8 s of cache hits at 16 connections, with 2 ms), and, if no reply had come
    # yet, replayed on another worker for a client already gone. Nothing is gained by a retry
    # after the half-close, so the timeout is past any phase (max_message_timeout included).
    "retry_back_off": {"base_interval": "0.025s", "max_interval": "300s"},
    "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
    "host_selection_retry_max_attempts": 5,
}


def processor_service(processor_cluster: str) -> dict[str, Any]:
    """The gRPC service of every ext_proc filter: the workers' cluster, stream starts retried."""
    # skip_envoy_headers: no x-envoy-internal and x-forwarded-for on every stream (the processor
    # reads no stream metadata); measured 4-6% less Envoy plus processor CPU per request on the
    # floor (docs/performance.md). A copy each: a shared dict would be dumped as a YAML anchor.
    return {"envoy_grpc": {"cluster_name": processor_cluster, "skip_envoy_headers": True},
            "retry_policy": copy.deepcopy(STREAM_START_RETRY)}


def endpoint_metadata(provider: str) -> dict[str, Any]:
    """Names the provider behind an endpoint: the attempt filter and the response phase read it."""
    return {"filter_metadata": {"edge_ext": {"provider": provider}}}


def attempt_filter(config: Config, processor_cluster: str) -> dict[str, Any]:
    ext_proc = {
        "name": "envoy.filters.http.ext_proc",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": processor_service(processor_cluster),
            # A retry the processor cannot re-shape must not leave with the first provider's
            # credentials: fail closed.
            "failure_mode_allow": False,
            "message_timeout": f"{config.processor.message_timeout_ms / 1000}s",
            "allow_mode_override": True,
            # :path and :authority change with the provider.
            "mutation_rules": {"allow_all_routing": True},
            "processing_mode": {"request_header_mode": "SEND", "request_body_mode": "NONE",
                                "response_header_mode": "SKIP", "response_body_mode": "NONE",
                                "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP"},
            "request_attributes": ["xds.upstream_host_metadata"],
            # The request's own metadata, written by the router-level filter: the first provider
            # (whose shape the replayed body is in), the public model and the client's API.
            "metadata_options": {"forwarding_namespaces": {"untyped": ["edge_ext"]},
                                 # A refusal retried on the fallback group is marked in the
                                 # request's metadata: the response phases and the access log see it.
                                 "receiving_namespaces": {"untyped": ["edge_ext"]}},
        },
    }
    skip_first = {"name": "first-attempt", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter"}}

    def header_is(name: str, value: str) -> dict[str, Any]:
        return {"single_predicate": {
            "input": {"name": name, "typed_config": {
                "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput", "header_name": name}},
            "value_match": {"exact": value}}}
    return {
        "name": "envoy.filters.http.match_delegate",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher",
            "extension_config": ext_proc,
            # Seen with Envoy 1.40: skipped on the first attempt, unless the router-level filter
            # asked for that attempt's answer to be read for a refusal (REFUSAL_WATCH).
            "xds_matcher": {"matcher_list": {"matchers": [{
                "predicate": {"and_matcher": {"predicate": [
                    header_is(_ATTEMPT_COUNT, "1"),
                    {"not_matcher": {"or_matcher": {"predicate": [
                        header_is(REFUSAL_WATCH, "json"), header_is(REFUSAL_WATCH, "stream")]}}},
                ]}},
                "on_match": {"action": skip_first},
            }]}},
        },
    }


def failover_cluster(config: Config, plan: tuple[str, ...], processor_cluster: str) -> dict[str, Any]:
    members = {p.name: p.cluster for p in config.providers}
    return {
        "name": cluster_for(plan, ""),
        "connect_timeout": "5s",
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
                             "clusters": [members[name] for name in plan]},
        },
        # Retries are bounded per request by the plan; Envoy's default of 3 concurrent retries
        # per cluster would turn an outage into errors for all but three clients.
        "circuit_breakers": {"thresholds": [{"max_retries": 100000, "max_requests": 100000, "max_pending_requests": 100000}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                # As the provider clusters (HTTP/1.1): the members' connection pools serve it.
                "explicit_http_config": {"http_protocol_options": {}},
                "http_filters": [
                    attempt_filter(config, processor_cluster),
                    {"name": "envoy.filters.http.upstream_codec", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"}},
                ],
            }
        },
    }


def failover_clusters(config: Config, processor_cluster: str) -> list[dict[str, Any]]:
    return [failover_cluster(config, plan, processor_cluster) for plan in all_plans(config)]
