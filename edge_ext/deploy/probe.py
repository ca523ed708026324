"""``python -m edge_ext.deploy.probe --config FILE``: the processor pod's readiness and liveness probe.

Kubelet's gRPC probe speaks plaintext only, and a worker behind mutual TLS answers no one
without a certificate from its CA. So the pod checks its own workers, the way Envoy does: gRPC
health of the ext_proc service, over the same mutual TLS (the pod's certificate carries the
client-auth usage for this), on loopback. Exit status 0 only when every worker is SERVING, which
a draining worker no longer is.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_ext.config import load_config
from edge_ext.config.server import Processor

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
WILDCARD = ("0.0.0.0", "::", "[::]", "")


def target(processor: Processor, index: int) -> str:
    """Worker ``index``'s address, with a wildcard bind replaced by loopback."""
    address = processor.worker_address(index)
    if address.startswith("unix:"):
        return address
    host, _, port = address.rpartition(":")
    return f"{'127.0.0.1' if host in WILDCARD else host}:{port}"


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def channel(processor: Processor, address: str) -> grpc.Channel:
    mtls = processor.mtls
    if mtls is None:
        return grpc.insecure_channel(address)
    credentials = grpc.ssl_channel_credentials(_read(mtls.ca_file), _read(mtls.client_key_file), _read(mtls.client_cert_file))
    # Loopback is not a name in the certificate: check the one Envoy checks.
    return grpc.secure_channel(address, credentials, options=[("grpc.ssl_target_name_override", mtls.server_name)])


def check(processor: Processor, index: int, timeout_s: float) -> str | None:
    """None when worker ``index`` is SERVING, else what is wrong."""
    address = target(processor, index)
    try:
        with channel(processor, address) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=EXT_PROC_SERVICE), timeout=timeout_s)
    except grpc.RpcError as exc:
        return f"worker {index} ({address}): {exc.code().name}: {exc.details()}"
    except OSError as exc:
        return f"worker {index} ({address}): {exc}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"worker {index} ({address}): {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_ext.deploy.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per worker")
    args = parser.parse_args(argv)
    processor = load_config(args.config).processor
    problems = [p for p in (check(processor, i, args.timeout) for i in range(processor.worker_count())) if p]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
