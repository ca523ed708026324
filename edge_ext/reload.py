"""Apply a changed config to a running edge without dropping a request.

Asked for by SIGHUP, `edge-ext reload` or the admin API's Reload call; run on the supervisor's
loop, one at a time. The edge re-reads the config file it was started with, and:

1. validates it: a file that fails (each problem logged with its line), or that changes a key
   only a restart can change (edge_ext.config.reloadable), is refused and the old config keeps
   serving;
2. Envoy: writes the new clusters (the old ones kept beside them), routes and listener and
   waits until Envoy took each (edge_ext.envoy_files);
3. workers: replaces them one at a time, each successor taking over its predecessor's socket
   once it serves, the predecessor finishing its open streams (edge_ext.supervisor). Workers
   are replaced, not patched: policy, caches, routing, budgets and keys are built in one place
   (edge_ext.wiring) and a new process builds them from the new config with nothing of the old
   one left behind, while a stream keeps the policy it started with to its end;
4. Envoy: drops the clusters of providers the new config removed, now that no worker routes
   to them.

A failure in step 2 or 3 puts back what was already changed and refuses the reload.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from edge_ext.config import ConfigInvalid
from edge_ext.config.reloadable import restart_only_changes
from edge_ext.envoy_config.dynamic import CLUSTERS, merged_clusters
from edge_ext.envoy_config.render import render
from edge_ext.envoy_files import ORDER, EnvoyFiles, EnvoyRejected

log = logging.getLogger("edge_ext.reload")


def version_of(text: bytes) -> str:
    """A config's version: the start of the SHA-256 of its file (compare with `sha256sum`)."""
    return hashlib.sha256(text).hexdigest()[:12]


@dataclass(eq=False)  # a registered collector must be hashable
class LiveConfig:
    """Which config serves, since when, and how reloads went: read by the metrics endpoint."""

    version: str
    loaded_at: float = field(default_factory=time.time)
    results: dict[str, int] = field(default_factory=lambda: {"applied": 0, "refused": 0})

    def collect(self):
        info = InfoMetricFamily("edge_ext_config", "The config version that serves (SHA-256 of the file, first 12 hex)")
        info.add_metric([], {"version": self.version})
        loaded = GaugeMetricFamily("edge_ext_config_loaded_timestamp_seconds", "When the serving config was loaded")
        loaded.add_metric([], self.loaded_at)
        reloads = CounterMetricFamily("edge_ext_config_reloads", "Reloads asked for, by result", labels=["result"])
        for result, count in self.results.items():
            reloads.add_metric([result], count)
        return [info, loaded, reloads]


@dataclass(frozen=True)
class ReloadResult:
    applied: bool
    version: str
    problems: tuple[str, ...] = ()


class Reloader:
    def __init__(self, make_plan: Callable, plan, supervisor, envoy: EnvoyFiles | None, live: LiveConfig,
                 worker_argv: Callable[[str, int], list[str]]):
        self._make_plan, self.plan, self._sup, self._envoy, self.live = make_plan, plan, supervisor, envoy, live
        self._worker_argv = worker_argv

    def reload(self) -> ReloadResult:
        log.info("reload: reading %s", self.plan.source)
        try:
            plan = self._make_plan()
        except ConfigInvalid as exc:
            return self._refuse([str(p) for p in exc.problems], f"{exc.source} is invalid")
        problems = restart_only_changes(self.plan.config, plan.config)
        if problems:
            return self._refuse(problems, "the new config changes keys that need a restart")
        if plan.version == self.plan.version:
            log.info("reload: config version %s unchanged", plan.version)
            return ReloadResult(True, plan.version)
        old = self._envoy.current.copy() if self._envoy else {}
        try:
            self._apply_envoy(plan, keep=old.get(CLUSTERS, []))
        except (EnvoyRejected, OSError) as exc:
            self._restore_envoy(old)
            return self._refuse([str(exc)], "Envoy did not take the new config")
        replaced = []
        for index, child in enumerate(self._workers()):
            if not self._sup.replace(child, self._worker_argv(str(plan.config_path), index)):
                self._restore_workers(replaced)
                self._restore_envoy(old)
                return self._refuse([f"{child.name} did not start with the new config (its log says why)"],
                                    "a worker did not start")
            replaced.append(child)
        if self._envoy:
            self._envoy.apply(CLUSTERS, self._envoy.resources(render(plan.config))[CLUSTERS], plan.version)
        self.plan = plan
        self.live.version, self.live.loaded_at = plan.version, time.time()
        self.live.results["applied"] += 1
        log.info("reload: config version %s serves", plan.version)
        return ReloadResult(True, plan.version)

    def _workers(self):
        return [c for c in self._sup.children if c.name.startswith("worker-")]

    def _apply_envoy(self, plan, keep: list) -> None:
        if self._envoy is None:
            return
        new = self._envoy.resources(render(plan.config))
        new[CLUSTERS] = merged_clusters(keep, new[CLUSTERS])
        for name in ORDER:
            self._envoy.apply(name, new[name], plan.version)

    def _restore_envoy(self, old: dict) -> None:
        for name in ORDER if self._envoy else ():
            try:
                self._envoy.apply(name, old[name], self.plan.version)
            except (EnvoyRejected, OSError) as exc:  # Envoy keeps what it last took
                log.error("reload: could not put back Envoy's %s: %s", name, exc)

    def _restore_workers(self, replaced: list) -> None:
        for index, child in enumerate(replaced):
            if not self._sup.replace(child, self._worker_argv(str(self.plan.config_path), index)):
                log.error("reload: %s could not be put back on config %s; it serves the new one", child.name, self.plan.version)

    def _refuse(self, problems: list[str], why: str) -> ReloadResult:
        log.error("reload refused, config version %s keeps serving: %s", self.plan.version, why)
        for problem in problems:
            log.error("reload: %s", problem)
        self.live.results["refused"] += 1
        return ReloadResult(False, self.plan.version, tuple(problems))
