"""The Envoy side of the 2-message path: usage read by Envoy, outcomes sent back in batches.

A plain answer (same API, not cached, not streamed) is never shown to the processor: its stream
ends after the request body. Envoy itself extracts the usage from the JSON answer
(json_to_metadata, namespace ``edge_usage``) and its gRPC access logger streams each such
request's outcome to the processor workers (the same cluster, the same door as ext_proc),
many entries per message. Only requests the processor marked ``edge_ext:outcome`` are sent.
"""

from __future__ import annotations

from typing import Any

from edge_ext.config.models import Config
from edge_ext.routing.ratelimits import HEADERS as RATE_LIMIT_HEADERS
from edge_ext.usage import READERS

LOG_NAME = "edge_ext_outcomes"
USAGE_NAMESPACE = "edge_usage"
# The custom tag naming the provider endpoint that answered (after an in-flight failover, not
# the first one tried): the endpoint's own edge_ext metadata.
SERVED_TAG = "served"


def usage_filter() -> dict[str, Any]:
    # APIs that put a figure in the same place share its key: one rule each.
    unique = {key: path for reader in READERS.values() for key, path in reader.paths.items()}
    rules = [{"selectors": [{"key": "usage"}, *({"key": part} for part in path)],
              "on_present": {"metadata_namespace": USAGE_NAMESPACE, "key": key, "type": "NUMBER"}}
             for key, path in unique.items()]
    return {
        "name": "envoy.filters.http.json_to_metadata",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.json_to_metadata.v3.JsonToMetadata",
            # The default allow_content_types (application/json) is kept on purpose: allowing
            # text/event-stream would make this filter buffer whole streams. The match is exact,
            # so the charset spelling providers send is listed too.
            "response_rules": {"rules": rules, "allow_content_types": ["application/json", "application/json; charset=utf-8"]},
        },
    }


def outcome_log(config: Config, processor_cluster: str) -> dict[str, Any]:
    flush_s = config.accounting.outcome_flush_ms / 1000
    return {
        "name": "envoy.access_loggers.http_grpc",
        # Only requests whose outcome the processor waits for.
        "filter": {"metadata_filter": {
            "matcher": {"filter": "edge_ext", "path": [{"key": "outcome"}], "value": {"string_match": {"exact": "1"}}},
            "match_if_key_not_found": False}},
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
            "common_config": {
                "log_name": LOG_NAME,
                "grpc_service": {"envoy_grpc": {"cluster_name": processor_cluster}},
                "transport_api_version": "V3",
                "buffer_flush_interval": f"{flush_s}s",
                "custom_tags": [{"tag": SERVED_TAG, "metadata": {
                    "kind": {"host": {}}, "metadata_key": {"key": "edge_ext", "path": [{"key": "provider"}]}}}],
            },
            # A provider's own retry-after opens its breaker for that long; its rate-limit
            # headers steer routing before its 429 comes (edge_ext.routing.ratelimits).
            "additional_response_headers_to_log": ["retry-after", *RATE_LIMIT_HEADERS],
        },
    }


def apply(hcm: dict[str, Any], config: Config, processor_cluster: str) -> None:
    """Turns the 2-message path on in the listener's HTTP connection manager."""
    filters = hcm["http_filters"]
    ext_proc = next(f for f in filters if f["name"] == "envoy.filters.http.ext_proc")
    # Statically SEND: the processor decides per request, when it has read the body, whether to
    # see the answer (keep the stream open) or not (end the stream: Envoy skips every response
    # phase). A mode override could only come with the request headers, before the body.
    ext_proc["typed_config"]["processing_mode"]["response_header_mode"] = "SEND"
    if config.accounting.enabled:
        router = next(i for i, f in enumerate(filters) if f["name"] == "envoy.filters.http.router")
        filters.insert(router, usage_filter())
    hcm["access_log"].append(outcome_log(config, processor_cluster))
    # x-edge-provider names who answered: after an in-flight failover that is not the provider
    # the request was routed to, and no response phase corrects the header. The answering
    # endpoint's metadata wins when there is one (empty, e.g. for a cache hit, it adds nothing).
    route = next(r for r in hcm["route_config"]["virtual_hosts"][0]["routes"] if r["name"] == "providers")
    route["response_headers_to_add"].append({
        "header": {"key": "x-edge-provider", "value": "%UPSTREAM_METADATA(edge_ext:provider)%"},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "keep_empty_value": False})
