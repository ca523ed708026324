"""The floor: a processor doing the least any router must (constant replies, no parsing).

    python -m tests.bench.floor UNIX_SOCKET_PATH CLUSTER

The benchmark runs it behind the same Envoy bootstrap as edge-ext to show how much of the cost
is grpc.aio and Envoy's ext_proc round trips, and how much is edge-ext's own policy.
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc


def replies(cluster: str) -> tuple[pb.ProcessingResponse, pb.ProcessingResponse]:
    headers = pb.ProcessingResponse(request_headers=pb.HeadersResponse())
    body = pb.ProcessingResponse()
    mutation = body.request_body.response.header_mutation
    mutation.set_headers.add(header=pb.HeaderValue(key="x-edge-cluster", raw_value=cluster.encode()))
    body.request_body.response.clear_route_cache = True
    return headers, body


class Floor(service_pb2_grpc.ExternalProcessorServicer):
    def __init__(self, cluster: str):
        self.headers, self.body = replies(cluster)

    async def Process(self, request_iterator, context):
        async for request in request_iterator:
            if request.HasField("request_body"):
                yield self.body
                # The bootstrap sends response headers statically (edge-ext's 2-message path):
                # ending the stream is how a processor declines them.
                return
            yield self.headers


async def serve(address: str, cluster: str) -> None:
    server = grpc.aio.server()
    service_pb2_grpc.add_ExternalProcessorServicer_to_server(Floor(cluster), server)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("envoy.service.ext_proc.v3.ExternalProcessor", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    import uvloop  # as edge-ext's workers do: it measured 15-20% faster here

    uvloop.install()
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
