"""The edge's own admin socket: the call only the supervisor can answer (Reload).

A worker's admin socket answers for that worker; a reload concerns every process of the edge,
so the supervisor serves it, at <state_dir>/admin/edge.sock (in the instance's private
directory) and with the same bearer token as the workers' admin API.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import grpc

from edge_ext.admin.pb import admin_pb2 as pb
from edge_ext.admin.pb import admin_pb2_grpc
from edge_ext.admin.service import SyncTokenCheck
from edge_ext.config.instance import admin_token
from edge_ext.config.models import Config

# A reload waits for Envoy and replaces every worker, one after the other.
RELOAD_TIMEOUT_S = 300.0


class EdgeAdmin(admin_pb2_grpc.AdminServicer):
    def __init__(self, request_reload: Callable[[], Future]):
        self._request_reload = request_reload

    def Reload(self, request: pb.ReloadRequest, context: grpc.ServicerContext) -> pb.ReloadResponse:
        try:
            result = self._request_reload().result(timeout=RELOAD_TIMEOUT_S)
        except FutureTimeout:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the reload is still running; the edge's log tells how it ends")
        except Exception:  # its traceback is in the edge's log; the caller learns where to look
            context.abort(grpc.StatusCode.INTERNAL, "the reload failed; the edge's log says why")
        if result is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this edge cannot reload")
        return pb.ReloadResponse(applied=result.applied, version=result.version, problems=list(result.problems))


def serve(config: Config, request_reload: Callable[[], Future]) -> grpc.Server:
    server = grpc.server(ThreadPoolExecutor(max_workers=2, thread_name_prefix="edge-admin"),
                         interceptors=[SyncTokenCheck(admin_token(config.processor.admin_token_path, create=True))])
    admin_pb2_grpc.add_AdminServicer_to_server(EdgeAdmin(request_reload), server)
    address = config.processor.edge_admin_address
    Path(address[5:]).unlink(missing_ok=True)  # left by an edge that was killed
    server.add_insecure_port(address)
    server.start()
    return server
