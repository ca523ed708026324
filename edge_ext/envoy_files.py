"""The discovery files of the Envoy that `edge-ext up` runs, and the wait for Envoy to take them.

Envoy reads a file when it is renamed into its watched directory and counts the update as
accepted or rejected (edge_ext.envoy_config.dynamic.UPDATE_STATS); a new cluster or listener
then warms before it serves. An update is done when Envoy accepted it and nothing warms.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from edge_ext import envoy_admin
from edge_ext.envoy_config.dynamic import CLUSTERS, LISTENERS, ROUTES, UPDATE_STATS, document, split, write_atomically
from edge_ext.errors import ConfigError

log = logging.getLogger("edge_ext.reload")

Resources = dict[str, list[dict[str, Any]]]
_WARMING = ("cluster_manager.warming_clusters", "listener_manager.total_listeners_warming")


class EnvoyRejected(ConfigError):
    code = "envoy_rejected_config"


class EnvoyFiles:
    def __init__(self, directory: Path, admin: str, timeout_s: float = 15.0):
        self.directory, self.admin, self.timeout_s = directory, admin, timeout_s
        self.current: Resources = {}

    def bootstrap(self, rendered: dict[str, Any], version: str) -> dict[str, Any]:
        """The bootstrap to start Envoy with; its discovery files are written beside."""
        self.directory.mkdir(mode=0o700, exist_ok=True)
        boot, self.current = split(rendered, self.directory)
        for name, resources in self.current.items():
            write_atomically(self.directory / name, document(name, resources, version))
        return boot

    def resources(self, rendered: dict[str, Any]) -> Resources:
        return split(rendered, self.directory)[1]

    def apply(self, name: str, resources: list[dict[str, Any]], version: str) -> bool:
        """Write one file and wait until Envoy took it; False when it was unchanged."""
        if resources == self.current.get(name):
            return False
        before = self._counts(name)
        write_atomically(self.directory / name, document(name, resources, version))
        deadline = time.monotonic() + self.timeout_s
        while True:
            accepted, rejected = self._counts(name)
            if rejected > before[1]:
                raise EnvoyRejected(f"Envoy rejected the new {name} (see Envoy's log for why)")
            if accepted > before[0] and not any(envoy_admin.stat(self.admin, s) for s in _WARMING):
                break
            if time.monotonic() > deadline:
                raise EnvoyRejected(f"Envoy did not take the new {name} within {self.timeout_s:.0f}s")
            time.sleep(0.05)
        self.current[name] = resources
        log.info("envoy took the new %s (version %s)", name, version)
        return True

    def _counts(self, name: str) -> tuple[int, int]:
        prefix = UPDATE_STATS[name]
        return envoy_admin.stat(self.admin, prefix + "success"), envoy_admin.stat(self.admin, prefix + "rejected")


ORDER = (CLUSTERS, ROUTES, LISTENERS)  # what a route or a listener names exists before it is used
