"""Build and run one processor worker: ext_proc and gRPC health for Envoy on one grpc.aio server,
the admin API on a second one.

Two doors, two keys. The ext_proc socket is for Envoy alone: it lives in the instance's private
directory (0700), or behind mutual TLS on TCP. The admin API (spend, breaker overrides) is for
operators: its own Unix socket per worker, under the same private directory, and a bearer token.
"""

from __future__ import annotations

import asyncio
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


def grpc_options(config: Config) -> list[tuple[str, int]]:
    # gRPC Python refuses messages over 4 MiB by default; a BUFFERED body arrives whole.
    limit = config.processor.max_body_bytes + 1024 * 1024
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        # Envoy keeps one long-lived HTTP/2 connection per worker; many streams share it.
        ("grpc.max_concurrent_streams", 10000),
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


def _clear_socket(address: str) -> None:
    """A Unix socket left by a crashed worker would make the bind fail."""
    if address.startswith("unix:"):
        Path(address[5:]).unlink(missing_ok=True)


async def build_admin_server(config: Config, index: int, deps) -> grpc.aio.Server:
    token = admin_token(config.processor.admin_token_path, create=True)
    server = grpc.aio.server(interceptors=[TokenCheck(token)])
    admin_pb2_grpc.add_AdminServicer_to_server(AdminService(config, index, deps.metrics, deps.policy.router, deps.budgets), server)
    address = config.processor.admin_address(index)
    _clear_socket(address)
    server.add_insecure_port(address)  # a Unix socket in the private directory
    await server.start()
    return server


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
    outcomes = AccessLogService(deps.driver.outcome, deps.metrics)
    als_service_pb2_grpc.add_AccessLogServiceServicer_to_server(outcomes, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _clear_socket(address)
    if bind(server, config, address) == 0 and not address.startswith("unix:"):
        raise OSError(f"cannot listen on {address}")
    await server.start()
    for service in deps.services:
        await service.start()
    admin = await build_admin_server(config, index, deps)
    for name in ("", EXT_PROC_SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return WorkerServer(server, admin, deps.services, outcomes), health_servicer


async def serve_worker(config: Config, index: int, grace_s: float = 5.0) -> None:
    address = config.processor.worker_address(index)
    server, health_servicer = await build_server(config, index, address)
    log.info("worker %d (pid %d) listening on %s", index, os.getpid(), address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Drain: report NOT_SERVING so Envoy's health check moves new streams away, then let
    # open streams finish within the grace period.
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)
    log.info("worker %d stopped", index)
