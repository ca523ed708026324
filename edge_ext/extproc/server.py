"""Build and run one processor worker: ext_proc and gRPC health for Envoy on one grpc.aio server,
the admin API on a second one.

Two doors, two keys. The ext_proc socket is for Envoy alone: it lives in the instance's private
directory (0700), or behind mutual TLS on TCP. The admin API (spend, breaker overrides) is for
operators: its own Unix socket per worker, under the same private directory, and a bearer token.

Handover: a worker binds its Unix sockets under a name of its own and renames them onto the
worker's path only once it serves. A successor started beside a running worker (a reload)
therefore takes the path over atomically: Envoy's next connection reaches the successor, while
its open connection to the old worker carries on until that worker's GOAWAY. (gRPC unlinks the
path it bound when it stops, which is why the old worker must never have bound the shared path
itself.) On TCP, gRPC's SO_REUSEPORT lets the successor listen on the same port.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edge_ext.admin.pb import admin_pb2_grpc
from edge_ext.admin.service import AdminService, TokenCheck
from edge_ext.config.instance import admin_token, check_socket_path, ensure_private_dir
from edge_ext.config.models import Config
from edge_ext.extproc.access_log import AccessLogService
from edge_ext.extproc.pb import als_service_pb2_grpc, service_pb2_grpc
from edge_ext.extproc.servicer import ExternalProcessor
from edge_ext.telemetry import build_tracer
from edge_ext.wiring import build_worker

log = logging.getLogger("edge_ext.worker")

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"


# The ext_proc server's transport settings, shared with the benchmark's floor processor
# (tests/bench/floor.py) so that the floor measures what edge-ext's transport costs.
# docs/performance.md ("The gRPC server: what was tried") has the measurements behind them.
TRANSPORT_OPTIONS: dict[str, int] = {
    # Envoy keeps one long-lived HTTP/2 connection per worker; many streams share it.
    "grpc.max_concurrent_streams": 10000,
}


def grpc_options(config: Config) -> list[tuple[str, int]]:
    # gRPC Python refuses messages over 4 MiB by default; a BUFFERED body arrives whole.
    limit = config.processor.max_body_bytes + 1024 * 1024
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        *TRANSPORT_OPTIONS.items(),
    ]


def bind(server: grpc.aio.Server, config: Config, address: str) -> int:
    mtls = config.processor.mtls
    if mtls is None:
        return server.add_insecure_port(address)

    def read(path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    credentials = grpc.ssl_server_credentials(
        [(read(mtls.server_key_file), read(mtls.server_cert_file))],
        root_certificates=read(mtls.ca_file),
        require_client_auth=True,  # only Envoy, holding a certificate from our CA, gets in
    )
    return server.add_secure_port(address, credentials)


def prepare_directories(config: Config) -> None:
    """The instance's private directory, the socket directory and the admin socket directory."""
    proc = config.processor
    last = proc.worker_count() - 1
    for address in (proc.worker_address(last), proc.admin_address(last)):
        if address.startswith("unix:"):
            check_socket_path(address[5:])
    ensure_private_dir(proc.directory)
    if proc.is_unix:
        ensure_private_dir(proc.socket_address[5:])
    ensure_private_dir(proc.directory + "/admin")


def staging_address(address: str) -> str:
    """Where this process binds before it serves: a name of its own beside the shared path,
    no longer than it (``.<pid>.sock`` is at most as long as ``worker-N.sock``)."""
    if not address.startswith("unix:"):
        return address
    path = Path(address[5:])
    staging = path.with_name(f".{os.getpid()}.sock")
    staging.unlink(missing_ok=True)
    return f"unix:{staging}"


def publish(staging: str, address: str) -> None:
    """Move a served socket onto the shared path (replacing a predecessor's, or a dead one's)."""
    if staging != address:
        os.replace(staging[5:], address[5:])


async def build_admin_server(config: Config, index: int, deps) -> tuple[grpc.aio.Server, str]:
    token = admin_token(config.processor.admin_token_path, create=True)
    server = grpc.aio.server(interceptors=[TokenCheck(token)])
    admin_pb2_grpc.add_AdminServicer_to_server(AdminService(config, index, deps.metrics, deps.policy.router, deps.budgets,
                                                            deps.semantic), server)
    staging = staging_address(config.processor.admin_address(index))
    server.add_insecure_port(staging)  # a Unix socket in the private directory
    await server.start()
    return server, staging


class WorkerServer:
    """The worker's two gRPC servers and its background services, stopped together."""

    def __init__(self, ext_proc: grpc.aio.Server, admin: grpc.aio.Server, services: list,
                 outcomes: AccessLogService | None = None):
        self.ext_proc, self.admin, self.services, self.outcomes = ext_proc, admin, services, outcomes

    async def stop(self, grace_s: float | None) -> None:
        await self.admin.stop(0)
        if self.outcomes is not None:
            self.outcomes.drain()  # Envoy's next batches go to the other workers
        await self.ext_proc.stop(grace_s)
        for service in self.services:
            await service.aclose()


async def build_server(config: Config, index: int, address: str, span_exporter=None) -> tuple[WorkerServer, health.HealthServicer]:
    prepare_directories(config)
    deps = build_worker(config)
    # Before the server exists: instrumenting grpc.aio patches how servers are made.
    tracer = build_tracer(config.telemetry, span_exporter)
    server = grpc.aio.server(options=grpc_options(config))
    service_pb2_grpc.add_ExternalProcessorServicer_to_server(
        ExternalProcessor(deps.driver, deps.metrics, deps.clock, tracer), server
    )
    # Envoy's access log brings the outcomes of 2-message requests (edge_ext.extproc.access_log).
    outcomes = AccessLogService(deps.driver.outcomes, deps.metrics)
    als_service_pb2_grpc.add_AccessLogServiceServicer_to_server(outcomes, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    staging = staging_address(address)
    if bind(server, config, staging) == 0 and not address.startswith("unix:"):
        raise OSError(f"cannot listen on {address}")
    await server.start()
    for service in deps.services:
        await service.start()
    admin, admin_staging = await build_admin_server(config, index, deps)
    for name in ("", EXT_PROC_SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    publish(admin_staging, config.processor.admin_address(index))
    publish(staging, address)
    return WorkerServer(server, admin, deps.services, outcomes), health_servicer


def longest_request_s(config: Config) -> float:
    """How long a request may last (every attempt at the slowest provider): the drain grace."""
    return max(p.timeout_s for p in config.providers) * config.routing.max_attempts


async def serve_worker(config: Config, index: int, ready_fd: int | None = None) -> None:
    address = config.processor.worker_address(index)
    server, health_servicer = await build_server(config, index, address)
    # What start-up built (config, price table, compiled schemas) lives as long as the worker:
    # out of the collector's full passes, which would otherwise walk it again and again.
    gc.freeze()
    log.info("worker %d (pid %d) listening on %s", index, os.getpid(), address)
    if ready_fd is not None:  # the supervisor waits for this to retire a predecessor
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Drain: report NOT_SERVING so Envoy's health check moves new streams away, then let
    # open streams finish: a replaced worker keeps its longest stream to its end. (The
    # supervisor bounds a shutdown itself, after draining Envoy.)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(longest_request_s(config))
    log.info("worker %d stopped", index)
