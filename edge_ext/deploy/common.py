"""What every deployment target shares: names, the in-cluster config, and YAML output.

The manifests of every target are rendered from one edge-ext config, so the processor's
address and ports, the provider clusters and the cluster header cannot drift apart.
"""

from __future__ import annotations

import copy
import hashlib
import textwrap
from dataclasses import dataclass
from typing import Any

import yaml

from edge_ext.config.hosts import is_loopback as host_is_loopback
from edge_ext.errors import ConfigError
from edge_ext.config.models import Config, Provider
from edge_ext.envoy_config.render import PROCESSOR_CLUSTER, render

K8S_VERSION = "1.30"
ISTIO_VERSIONS = "1.22-1.24"
IMAGE_NAME = "ghcr.io/edge-ext/edge-ext"
IMAGE_TAG = "0.1.0"
IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"
REDIS_IMAGE_NAME = "redis"
# 7.2 is the last Redis line under the BSD licence; any Redis-protocol server (Valkey) works.
REDIS_IMAGE_TAG = "7.2-alpine"
NAMESPACE = "edge-ext"

PROCESSOR = "edge-ext-processor"
REDIS = "edge-ext-redis"
ENVOY = "edge-ext-envoy"
CONFIG_MAP = "edge-ext-config"
KEYS_SECRET = "edge-ext-provider-keys"
# Istio's sidecar mode: the label selecting the workloads whose sidecars get the filter.
CLIENT_LABEL = "edge-ext.io/processor-client"
ISTIO_NS = "istio-system"
GATEWAY_SELECTOR = {"istio": "egressgateway"}
# Where every pod that speaks ext_proc mounts its cert-manager Secret (ca.crt, tls.crt, tls.key):
# the processor its server certificate, Envoy its client certificate, so one processor.mtls
# block names the right files in both (edge_ext.deploy.pki).
TLS_DIR = "/etc/edge-ext-tls"
# The instance's private directory inside a pod, on the /tmp emptyDir: one pod, one instance.
POD_STATE_DIR = "/tmp/edge-ext"
CONFIG_HASH = "edge-ext.io/config-sha256"
CONFIG_PATH = "/etc/edge-ext/config.yaml"
EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
DEFAULT_PORT = 50051
# Service ports (one per worker) are fixed at render time, and os.cpu_count() in a pod is the
# node's core count, not the CPU limit: "auto" is pinned to this.
DEFAULT_WORKERS = 2


class DeployError(ConfigError):
    """The config cannot be deployed to the chosen target as it stands."""


def labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "edge-ext", "app.kubernetes.io/component": component}


def meta(name: str, component: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "labels": labels(component), **extra}


@dataclass(frozen=True)
class Deployment:
    """The config as it must be inside a cluster, plus what was changed to get there."""

    config: Config
    text: str  # the processor ConfigMap's config.yaml
    changes: tuple[str, ...]
    namespace: str
    app_namespaces: tuple[str, ...] = ()  # Istio sidecar mode: namespaces that get a client certificate

    @property
    def mtls(self) -> bool:
        return self.config.processor.mtls is not None

    @property
    def workers(self) -> int:
        return self.config.processor.worker_count()

    @property
    def ports(self) -> list[int]:
        return [int(self.config.processor.worker_address(i).rpartition(":")[2]) for i in range(self.workers)]

    @property
    def metrics_port(self) -> int | None:
        return self.config.metrics.port if self.config.metrics.enabled else None

    @property
    def redis_addresses(self) -> set[tuple[str, int]]:
        """(host, port) of every Redis server or sentinel the config names."""
        r = self.config.redis
        return {a for conn in (r, r and r.cache) if conn is not None for a in conn.addresses()}

    @property
    def in_cluster_redis(self) -> bool:
        return (REDIS, 6379) in self.redis_addresses

    def text_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


IN_CLUSTER_REDIS = f"redis://{REDIS}:6379/0"


PLAINTEXT_WARNING = ("WARNING: rendered with --plaintext-processor. The workers accept ext_proc streams without TLS from\n"
                     "anything that reaches their ports, and an ext_proc stream can obtain provider credentials: only\n"
                     "the NetworkPolicy (if your network plugin enforces it) stands between them and every pod.")


def pod_mtls() -> dict[str, str]:
    """processor.mtls in a pod: each side's own Secret at TLS_DIR (see TLS_DIR)."""
    return {"ca_file": f"{TLS_DIR}/ca.crt", "server_cert_file": f"{TLS_DIR}/tls.crt", "server_key_file": f"{TLS_DIR}/tls.key",
            "client_cert_file": f"{TLS_DIR}/tls.crt", "client_key_file": f"{TLS_DIR}/tls.key"}


def written_state_dir(config_text: str) -> str | None:
    """processor.state_dir as the file says it. The loader fills in a per-file default under the
    home directory of whoever renders, which must neither reach a pod nor make renders differ."""
    try:
        data = yaml.safe_load(config_text)
    except yaml.YAMLError:
        return None
    processor = data.get("processor") if isinstance(data, dict) else None
    return processor.get("state_dir") if isinstance(processor, dict) else None


def _processor_changes(config: Config, config_text: str, plaintext: bool) -> tuple[dict[str, Any], list[str]]:
    proc = config.processor
    out: dict[str, Any] = {}
    changes: list[str] = []
    port = DEFAULT_PORT if proc.is_unix else int(proc.socket_address.rpartition(":")[2])
    address = f"0.0.0.0:{port}"
    if proc.address != address:
        out["address"] = address
        changes.append(f"processor.address {proc.address or 'unset'} -> {address} (the edge reaches workers over TCP)")
    written = written_state_dir(config_text)
    if written != POD_STATE_DIR:
        changes.append(f"processor.state_dir {written or 'unset'} -> {POD_STATE_DIR} (the pod's private directory, on its "
                       "/tmp emptyDir)")
    out["state_dir"] = POD_STATE_DIR
    if proc.workers == "auto":
        out["workers"] = DEFAULT_WORKERS
        changes.append(f"processor.workers auto -> {DEFAULT_WORKERS} (one Service port per worker, fixed at render time)")
    mtls = proc.mtls.model_dump(mode="json", exclude_defaults=True) if proc.mtls else None
    if plaintext:
        out["mtls"], out["allow_plaintext_tcp"] = None, True
        if mtls or not proc.allow_plaintext_tcp:
            changes.append("processor.mtls -> none, allow_plaintext_tcp -> true (--plaintext-processor)")
    else:
        out["mtls"], out["allow_plaintext_tcp"] = pod_mtls(), False
        if mtls != pod_mtls():
            changes.append(f"processor.mtls -> the cert-manager Secret mounted at {TLS_DIR} (Envoy and the processor "
                           "authenticate each other)")
        if proc.allow_plaintext_tcp:
            changes.append("processor.allow_plaintext_tcp true -> false (mutual TLS instead)")
    return out, changes


def deployment(config: Config, config_text: str, namespace: str = NAMESPACE, istio: bool = False, *,
               plaintext: bool = False, app_namespaces: tuple[str, ...] = ()) -> Deployment:
    """Adapt the config to a pod: TCP workers on all interfaces behind mutual TLS (unless
    ``plaintext``), a private state directory on the pod's emptyDir, metrics reachable, shared Redis.

    A config that already has all of it goes into the ConfigMap as its own text (comments kept);
    otherwise the ConfigMap holds the adapted config with a header naming every change.
    """
    data = config.model_dump(mode="json", exclude_defaults=True)
    processor, changes = _processor_changes(config, config_text, plaintext)
    data["processor"] = {key: value for key, value in {**data.get("processor", {}), **processor}.items()
                         if value is not None and not (key == "allow_plaintext_tcp" and value is False)}
    if config.metrics.enabled and config.metrics.host != "0.0.0.0":
        data.setdefault("metrics", {})["host"] = "0.0.0.0"
        changes.append(f"metrics.host {config.metrics.host} -> 0.0.0.0 (Prometheus scrapes the pod IP)")
    if istio and config.routing.max_attempts > 1:
        data.setdefault("routing", {})["max_attempts"] = 1
        changes.append(f"routing.max_attempts {config.routing.max_attempts} -> 1 (Istio routes on the provider edge-ext "
                       "chose; in-flight failover needs the Envoy edge's failover clusters)")
    if istio and config.accounting.fast_path:
        # A processor that ended a stream after the request body would wait for an outcome that
        # never comes: the answer would go unaccounted, its breaker verdict unseen.
        data.setdefault("accounting", {})["fast_path"] = False
        changes.append("accounting.fast_path true -> false (the mesh's proxies run only the ext_proc filter: no "
                       "access log brings outcomes back, so every answer takes its response phase)")
    if config.redis is None:
        # Replicas share breakers, budgets and the cache: through the bundled Redis, unless the
        # config names one.
        data["redis"] = {"url": IN_CLUSTER_REDIS}
        changes.append(f"redis.url -> {IN_CLUSTER_REDIS} (replicas share the cache, breakers and budgets "
                       "through one Redis)")
    adapted = Config.model_validate(data)
    if not changes:
        return Deployment(adapted, config_text, (), namespace, app_namespaces)
    header = "".join(
        ["# edge-ext config adapted for Kubernetes by `edge-ext render`. Changed from your config:\n"]
        + [f"#   {change}\n" for change in changes]
        + ["# Put these values in your config to have it shipped verbatim, comments included.\n"]
        + ([comment(PLAINTEXT_WARNING)] if plaintext else [])
    )
    text = header + yaml.safe_dump(adapted.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
    return Deployment(adapted, text, tuple(changes), namespace, app_namespaces)


def is_loopback(p: Provider) -> bool:
    return host_is_loopback(p.host)


def ext_proc_filter(config: Config) -> dict[str, Any]:
    """The ext_proc HTTP filter of the standalone bootstrap, copied so callers may edit it."""
    hcm = render(config)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return copy.deepcopy(next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.ext_proc"))


def dns_processor_cluster(config: Config, host: str) -> dict[str, Any]:
    """The bootstrap's processor cluster, resolving a headless Service: one endpoint per worker port.

    STRICT_DNS on a headless Service yields one host per ready pod and port, so Envoy balances,
    health-checks and ejects every worker of every replica itself (a ClusterIP would pin each
    HTTP/2 connection to one pod chosen by kube-proxy).
    """
    bootstrap = render(config)
    cluster = copy.deepcopy(next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == PROCESSOR_CLUSTER))
    cluster["type"] = "STRICT_DNS"
    cluster["dns_lookup_family"] = "V4_PREFERRED"
    # Scale-outs show up within one refresh; kube-dns answers with a 5 s TTL for headless names.
    cluster["dns_refresh_rate"] = "5s"
    cluster["respect_dns_ttl"] = True
    ports = [int(config.processor.worker_address(i).rpartition(":")[2]) for i in range(config.processor.worker_count())]
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}} for port in ports
    ]
    return cluster


class _Dumper(yaml.SafeDumper):
    # Envoy configs share sub-dicts (local reply filters); anchors would be legal YAML but hard
    # to read and handled unevenly by Kubernetes tooling.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def comment(text: str) -> str:
    lines = []
    for line in text.strip().splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        lines += textwrap.wrap(line, 100, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False) or [""]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def documents(header: str, docs: list[tuple[str, dict[str, Any]]]) -> str:
    """A multi-document YAML file: a header, then each object after its own `why` comment."""
    parts = [comment(header)]
    for why, obj in docs:
        parts.append("---\n" + (comment(why) if why else "") + dump(obj))
    return "".join(parts)


def kustomization(why: str, **fields: Any) -> str:
    body = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}
    return comment(why) + dump(body)


RENDERED = "Rendered by `edge-ext render` from the edge-ext config; edit the config and re-render, not this file."
