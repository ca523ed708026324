"""The floor's replies served by grpclib (pure-Python HTTP/2 on asyncio) instead of grpcio: a
reference point for the server, not a candidate (edge-ext serves with grpcio).

    pip install grpclib   # not a dependency of edge-ext
    python -m tests.bench.floor_grpclib UNIX_SOCKET_PATH CLUSTER [MESSAGES]
"""

from __future__ import annotations

import asyncio
import sys

from grpc_health.v1 import health_pb2
from grpclib.const import Cardinality, Handler
from grpclib.server import Server

from edge_ext.extproc.pb import ext_proc_pb2 as pb
from tests.bench.floor import SERVICE, replies


class GrpclibFloor:
    def __init__(self, cluster: str, messages: int = 2):
        self.replies, self.messages = replies(cluster, messages), messages

    async def process(self, stream) -> None:
        async for request in stream:
            kind = request.WhichOneof("request")
            await stream.send_message(self.replies[kind])
            if kind == "request_body" and self.messages == 2:
                return

    async def check(self, stream) -> None:
        await stream.recv_message()
        await stream.send_message(health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING))

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"/{SERVICE}/Process": Handler(self.process, Cardinality.STREAM_STREAM, pb.ProcessingRequest, pb.ProcessingResponse),
            "/grpc.health.v1.Health/Check": Handler(self.check, Cardinality.UNARY_UNARY, health_pb2.HealthCheckRequest,
                                                    health_pb2.HealthCheckResponse),
        }


async def serve(path: str, cluster: str, messages: int) -> None:
    server = Server([GrpclibFloor(cluster, messages)])
    await server.start(path=path)
    await server.wait_closed()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(serve(sys.argv[1].removeprefix("unix:"), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2))
