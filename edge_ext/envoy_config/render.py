"""Render Envoy's bootstrap from the edge-ext config: the template plus generated clusters."""

from __future__ import annotations

import copy
from pathlib import Path
from string import Template
from typing import Any

import yaml

from edge_ext.config.hosts import is_ip
from edge_ext.config.models import Config, Provider
from edge_ext.envoy_config import outcomes
from edge_ext.envoy_config.failover import endpoint_metadata, failover_clusters, processor_service

TEMPLATE = Path(__file__).with_name("template.yaml")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PROCESSOR_CLUSTER = "edge_ext_processor"

# Access log fields: ids, routing and timing only. Never headers or bodies (keys, prompts), nor
# the query string: clients put keys there too (?api_key=...), and a refused request is logged
# as it came. NQ: the path without its query (Envoy 1.31+).
ACCESS_LOG_FORMAT = {
    "time": "%START_TIME%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "method": "%REQ(:METHOD)%",
    "path": "%PATH(NQ:ORIG_OR_PATH)%",
    "status": "%RESPONSE_CODE%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "flags": "%RESPONSE_FLAGS%",
    "tenant": "%DYNAMIC_METADATA(edge_ext:tenant)%",
    "key_id": "%DYNAMIC_METADATA(edge_ext:key_id)%",
    "provider": "%DYNAMIC_METADATA(edge_ext:provider)%",
    "model": "%DYNAMIC_METADATA(edge_ext:model)%",
    "cache": "%DYNAMIC_METADATA(edge_ext:cache)%",
    "tokens_in": "%DYNAMIC_METADATA(edge_ext:tokens_in)%",
    "tokens_out": "%DYNAMIC_METADATA(edge_ext:tokens_out)%",
    "cost_usd": "%DYNAMIC_METADATA(edge_ext:cost_usd)%",
    "cost_estimated": "%DYNAMIC_METADATA(edge_ext:cost_estimated)%",
    # The provider's usage as Envoy read it from a plain answer (the 2-message path).
    "usage": "%DYNAMIC_METADATA(edge_usage)%",
    "upstream": "%UPSTREAM_HOST%",
    "bytes_in": "%BYTES_RECEIVED%",
    "bytes_out": "%BYTES_SENT%",
    "duration_ms": "%DURATION%",
    "upstream_ms": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
}


# Envoy writes file and stdout access logs from a buffer it flushes every 10 s by default: an
# operator tailing the edge would see each request 10 s late. One second costs one write a second.
ACCESS_LOG_FLUSH_MS = 1000


def envoy_args(bootstrap: str, drain_s: int, concurrency: int | None) -> list[str]:
    """Envoy's command line, the same for the local edge and the Kubernetes render."""
    argv = ["-c", bootstrap, "--disable-hot-restart", "--drain-time-s", str(drain_s), "--log-level", "warn",
            "--file-flush-interval-msec", str(ACCESS_LOG_FLUSH_MS)]
    return argv + ["--concurrency", str(concurrency)] if concurrency else argv


# Envoy's own local replies (413, processor down, no upstream) get an error body in the caller's
# API shape. Replies the processor sends carry edge_ext.reply metadata and keep their own body.
def _metadata_is(key: str, value: str, if_absent: bool) -> dict[str, Any]:
    return {
        "metadata_filter": {
            "matcher": {"filter": "edge_ext", "path": [{"key": key}], "value": {"string_match": {"exact": value}}},
            "match_if_key_not_found": if_absent,
        }
    }


_NOT_OURS = _metadata_is("reply", "-", if_absent=True)
# The processor names the client's API in metadata at the request headers (it may rewrite :path
# later); without the processor the path is still the client's own.
_ANTHROPIC_CLIENT = {
    "or_filter": {
        "filters": [
            _metadata_is("api", "anthropic", if_absent=False),
            {"and_filter": {"filters": [
                _metadata_is("api", "-", if_absent=True),
                {"header_filter": {"header": {"name": ":path", "string_match": {"prefix": "/v1/messages"}}}},
            ]}},
        ]
    }
}
# OpenAI error type -> Anthropic's, for the statuses Envoy itself answers with.
_ANTHROPIC_TYPES = {"invalid_request_error": "request_too_large", "rate_limit_error": "rate_limit_error", "api_error": "api_error"}


def _error_mapper(filters: list[dict[str, Any]], body: dict[str, Any]) -> dict[str, Any]:
    return {"filter": {"and_filter": {"filters": [*filters, _NOT_OURS]}}, "body_format_override": {"json_format": body}}


def _openai_body(error_type: str) -> dict[str, Any]:
    return {"error": {"message": "%LOCAL_REPLY_BODY%", "type": error_type, "param": None, "code": "%RESPONSE_CODE_DETAILS%"}}


def _anthropic_body(error_type: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _ANTHROPIC_TYPES[error_type], "message": "%LOCAL_REPLY_BODY% (%RESPONSE_CODE_DETAILS%)"}}


def local_reply_mappers() -> list[dict[str, Any]]:
    statuses = [(_status("EQ", 413), "invalid_request_error"), (_status("EQ", 429), "rate_limit_error"), (_status("GE", 400), "api_error")]
    anthropic = [_error_mapper([_ANTHROPIC_CLIENT, f], _anthropic_body(t)) for f, t in statuses]
    openai = [_error_mapper([f], _openai_body(t)) for f, t in statuses]
    return anthropic + openai


def _status(op: str, value: int) -> dict[str, Any]:
    return {"status_code_filter": {"comparison": {"op": op, "value": {"default_value": value, "runtime_key": f"edge_ext.local_reply.{op}.{value}"}}}}


def _endpoint_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def provider_cluster(p: Provider) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": p.cluster,
        "type": "STATIC" if is_ip(p.host) else "LOGICAL_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": f"{p.connect_timeout_s}s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": p.cluster,
            "endpoints": [
                {
                    "lb_endpoints": [
                        # hostname feeds auto_host_rewrite: the provider sees its own Host.
                        {"endpoint": {"address": _endpoint_address(p.host, p.port), "hostname": p.url.netloc},
                         "metadata": endpoint_metadata(p.name)}
                    ]
                }
            ],
        },
    }
    if p.tls:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": p.host,
                "common_tls_context": {
                    "validation_context": {
                        "trusted_ca": {"filename": CA_BUNDLE},
                        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": p.host}}],
                    }
                },
            },
        }
    return cluster


def processor_mtls(mtls) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": mtls.server_name,
            "common_tls_context": {
                # gRPC over TLS is negotiated as h2 by ALPN.
                "alpn_protocols": ["h2"],
                "tls_certificates": [{"certificate_chain": {"filename": mtls.client_cert_file},
                                      "private_key": {"filename": mtls.client_key_file}}],
                "validation_context": {
                    "trusted_ca": {"filename": mtls.ca_file},
                    "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": mtls.server_name}}],
                },
            },
        },
    }


RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"
_PROBE_METHODS = {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}


def local_rate_limit(limit) -> dict[str, Any]:
    percent = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "edge_ext.rate_limit"}
    return {
        "name": RATE_LIMIT_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "edge_rate_limit",
            "token_bucket": {"max_tokens": limit.max_tokens, "tokens_per_fill": limit.tokens_per_fill,
                             "fill_interval": f"{limit.fill_interval_s}s"},
            "filter_enabled": percent,
            "filter_enforced": percent,
            "response_headers_to_add": [{"header": {"key": "retry-after", "value": str(max(1, round(limit.fill_interval_s)))}}],
        },
    }


def exempt_probes(routes: list[dict[str, Any]]) -> None:
    """Probes (GET or HEAD on the health paths) skip the clients' token bucket: an overloaded
    edge must not look dead to its orchestrator, nor a probe spend a client's token. Other
    methods on those paths stay client requests (the processor answers them 405), limited."""
    names = [route["name"] for route in routes]
    live, ready = routes[names.index("health_live")], routes[names.index("health_ready")]
    probe = copy.deepcopy(ready)  # a copy, not shared dicts: the YAML would carry anchors
    probe["name"], probe["match"]["headers"] = "health_ready_probe", [dict(_PROBE_METHODS)]
    routes.insert(names.index("health_ready"), probe)
    for route in (live, probe):
        route["typed_per_filter_config"][RATE_LIMIT_FILTER] = {
            "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}


def processor_endpoints(config: Config) -> list[dict[str, Any]]:
    endpoints = []
    for index in range(config.processor.worker_count()):
        address = config.processor.worker_address(index)
        if address.startswith("unix:"):
            endpoints.append({"endpoint": {"address": {"pipe": {"path": address[5:]}}}})
        else:
            host, _, port = address.rpartition(":")
            endpoints.append({"endpoint": {"address": _endpoint_address(host.strip("[]"), int(port))}})
    return endpoints


def render(config: Config) -> dict[str, Any]:
    values = {
        "admin_host": config.envoy.admin.host,
        "admin_port": config.envoy.admin.port or 0,
        "listen_host": config.listen.host,
        "listen_port": config.listen.port,
        "buffer_limit": config.processor.max_body_bytes + 64 * 1024,
        "status_on_error": config.processor.status_on_error,
        "message_timeout": f"{config.processor.message_timeout_ms / 1000}s",
        "route_timeout": f"{max(p.timeout_s for p in config.providers)}s",
        "request_headers_timeout": f"{config.listen.request_headers_timeout_s}s",
        "request_timeout": f"{config.listen.request_timeout_s}s",
        "stream_idle_timeout": f"{config.listen.stream_idle_timeout_s}s",
    }
    bootstrap = yaml.safe_load(Template(TEMPLATE.read_text()).substitute(values))
    if config.envoy.admin.port is None:
        # Only the instance's user: a private directory, and the socket itself 0600.
        bootstrap["admin"]["address"] = {"pipe": {"path": config.envoy.admin.socket_path(config.processor), "mode": 0o600}}
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["local_reply_config"]["mappers"] = local_reply_mappers()
    ext_proc = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ext_proc")
    ext_proc["typed_config"]["grpc_service"] = processor_service(PROCESSOR_CLUSTER)
    if config.envoy.access_log:
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                    "log_format": {"json_format": ACCESS_LOG_FORMAT},
                },
            }
        ]
    if config.accounting.fast_path:
        outcomes.apply(hcm, config, PROCESSOR_CLUSTER)
    listener = bootstrap["static_resources"]["listeners"][0]
    if config.listen.tls:
        listener["filter_chains"][0]["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "tls_certificates": [{"certificate_chain": {"filename": config.listen.tls.cert_file},
                                          "private_key": {"filename": config.listen.tls.key_file}}],
                    "alpn_protocols": ["h2", "http/1.1"],
                },
            },
        }
    if config.listen.rate_limit:
        # Before ext_proc: a request over the limit costs no processor round trip.
        hcm["http_filters"].insert(0, local_rate_limit(config.listen.rate_limit))
        exempt_probes(hcm["route_config"]["virtual_hosts"][0]["routes"])
    clusters = bootstrap["static_resources"]["clusters"]
    clusters[0]["load_assignment"]["endpoints"][0]["lb_endpoints"] = processor_endpoints(config)
    if config.processor.mtls:
        clusters[0]["transport_socket"] = processor_mtls(config.processor.mtls)
    clusters.extend(provider_cluster(p) for p in config.providers)
    clusters.extend(failover_clusters(config, PROCESSOR_CLUSTER))
    return bootstrap


def render_yaml(config: Config) -> str:
    header = "# Rendered by `edge-ext envoy-config`; edit the edge-ext config, not this file.\n"
    return header + yaml.safe_dump(render(config), sort_keys=False, default_flow_style=False, width=120)
