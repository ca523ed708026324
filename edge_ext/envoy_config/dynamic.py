"""`edge-ext up`'s Envoy: the listener, its routes and the provider clusters come from files.

The rendered bootstrap (edge_ext.envoy_config.render) is split: the bootstrap keeps the admin
interface and the processor cluster (fixed for the life of the edge: its endpoints are the
worker sockets), and points Envoy at three discovery files in one directory, which Envoy
watches. A reload writes a file whole and renames it into place, the one update Envoy's watch
sees atomically; Envoy then swaps the resources without a restart:

- clusters (CDS): a new provider's cluster warms before it is used; a changed one replaces the
  old, whose requests in flight finish on their connections;
- routes (RDS): routes change without touching the listener or its connections;
- the listener (LDS): a changed listener takes new connections at once, and the old one drains
  its connections for Envoy's drain time (set to the longest a request may last), so that no
  request in flight is cut.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from edge_ext.envoy_config.render import PROCESSOR_CLUSTER

LISTENERS, CLUSTERS, ROUTES = "lds.yaml", "cds.yaml", "rds.yaml"
_TYPES = {
    LISTENERS: "type.googleapis.com/envoy.config.listener.v3.Listener",
    CLUSTERS: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    ROUTES: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
}
# Envoy's counters of accepted and rejected updates, per file.
UPDATE_STATS = {
    LISTENERS: "listener_manager.lds.update_",
    CLUSTERS: "cluster_manager.cds.update_",
    ROUTES: "http.edge.rds.edge.update_",
}


def _source(directory: Path, name: str) -> dict[str, Any]:
    return {"path_config_source": {"path": str(directory / name), "watched_directory": {"path": str(directory)}},
            "resource_api_version": "V3"}


def split(bootstrap: dict[str, Any], directory: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """(the bootstrap that reads ``directory``, the resources of each discovery file)."""
    boot = copy.deepcopy(bootstrap)
    static = boot["static_resources"]
    listeners = static.pop("listeners")
    clusters = [c for c in static["clusters"] if c["name"] != PROCESSOR_CLUSTER]
    static["clusters"] = [c for c in static["clusters"] if c["name"] == PROCESSOR_CLUSTER]
    routes = []
    for listener in listeners:
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        route = hcm.pop("route_config")
        routes.append(route)
        hcm["rds"] = {"route_config_name": route["name"], "config_source": _source(directory, ROUTES)}
    boot["dynamic_resources"] = {"lds_config": _source(directory, LISTENERS), "cds_config": _source(directory, CLUSTERS)}
    boot["node"] = {"id": "edge-ext", "cluster": "edge-ext"}  # Envoy wants a node for any discovery
    return boot, {LISTENERS: listeners, CLUSTERS: clusters, ROUTES: routes}


def document(name: str, resources: list[dict[str, Any]], version: str) -> str:
    """The discovery response Envoy reads from file ``name``."""
    body = {"version_info": version, "resources": [{"@type": _TYPES[name], **r} for r in resources]}
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=False, width=120)


def write_atomically(path: Path, text: str) -> None:
    """Write beside ``path`` and rename over it: Envoy's watch never sees half a file."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text)
    os.replace(staging, path)


def merged_clusters(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new clusters plus the old ones the new config drops (kept while workers switch over)."""
    names = {c["name"] for c in new}
    return [*new, *(c for c in old if c["name"] not in names)]
