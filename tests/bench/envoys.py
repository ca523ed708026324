"""The Envoys of the benchmark: a fast upstream with canned answers, bare Envoy and the floor's.

"bare" is edge-ext's own rendered bootstrap with the ext_proc filter removed and the route
pinned to the provider cluster; the floor's is the same bootstrap with the processor cluster
pointed at the floor processor's socket.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import yaml

from edge_ext.edge import envoy_binary

COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, how can I help?"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
}
SSE = "".join(
    "data: " + json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}) + "\n\n"
    for delta, finish, extra in [({"role": "assistant", "content": ""}, None, {}), ({"content": "Hello"}, None, {}),
                                 ({"content": " there"}, None, {}), ({}, "stop", {})]
) + "data: " + json.dumps({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                           "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}) + "\n\ndata: [DONE]\n\n"


def upstream_bootstrap(port: int, admin: int) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "upstream", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "upstream",
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                "route_config": {"virtual_hosts": [{"name": "u", "domains": ["*"], "routes": [{
                    "match": {"prefix": "/sse/"},
                    "direct_response": {"status": 200, "body": {"inline_string": SSE}},
                    "response_headers_to_add": [{"header": {"key": "content-type", "value": "text/event-stream"}}],
                }, {
                    "match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": json.dumps(COMPLETION)}},
                    "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}],
                }]}]},
            }}]}],
        }]},
    }


def bare_bootstrap(edge_bootstrap: dict, port: int, admin: int, cluster: str) -> dict:
    bare = copy.deepcopy(edge_bootstrap)
    bare["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = bare["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.ext_proc"]
    hcm["access_log"] = []
    for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
        if "route" in route:
            route["route"].pop("cluster_header")
            route["route"]["cluster"] = cluster
    bare["static_resources"]["clusters"] = [c for c in bare["static_resources"]["clusters"] if c["name"] != "edge_ext_processor"]
    return bare


def floor_bootstrap(edge_bootstrap: dict, port: int, admin: int, sock: Path, outcomes: bool = False) -> dict:
    """edge-ext's bootstrap with the floor processor behind it; ``outcomes`` keeps the outcome
    access log (a floor replaying edge-ext's replies gets their entries)."""
    floor = copy.deepcopy(edge_bootstrap)
    floor["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = floor["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    if not outcomes:
        listener["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] = []
    processor = floor["static_resources"]["clusters"][0]
    processor["load_assignment"]["endpoints"][0]["lb_endpoints"] = [{"endpoint": {"address": {"pipe": {"path": str(sock)}}}}]
    return floor


def start_envoy(bootstrap: dict, tmp: Path, name: str) -> subprocess.Popen:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    return subprocess.Popen([envoy_binary(), "-c", str(path), "--disable-hot-restart", "-l", "error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
