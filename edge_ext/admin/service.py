"""edge-ext's admin gRPC service (proto/edge_ext/admin/pb/admin.proto)."""

from __future__ import annotations

import os

import grpc

from edge_ext import __version__
from edge_ext.admin.pb import admin_pb2 as pb
from edge_ext.admin.pb import admin_pb2_grpc
from edge_ext.config.models import Config
from edge_ext.metrics import WorkerMetrics


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, config: Config, worker_index: int, metrics: WorkerMetrics, router=None):
        self._config = config
        self._router = router
        self._index = worker_index
        self._metrics = metrics

    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.GetStatusResponse:
        states = {name: s.value for name, s in self._router.states().items()} if self._router else {}
        return pb.GetStatusResponse(
            version=__version__,
            worker_index=self._index,
            worker_pid=os.getpid(),
            streams_total=int(self._metrics.streams._value.get()),
            providers=[
                pb.ProviderStatus(
                    name=p.name,
                    kind=p.kind,
                    cluster=p.cluster,
                    circuit_state=states.get(p.name, "closed"),
                    models=list(p.public_models()),
                )
                for p in self._config.providers
            ],
        )
