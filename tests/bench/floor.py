"""The floor: a processor doing the least any router must (constant replies, no parsing).

    python -m tests.bench.floor UNIX_SOCKET_PATH CLUSTER [MESSAGES]

The benchmark runs it behind the same Envoy bootstrap as edge-ext to show how much of the cost
is grpc.aio and Envoy's ext_proc round trips, and how much is edge-ext's own policy.

MESSAGES 2 (the default) answers the request headers and body, as a cache hit or a request that
needs nothing from the answer does. MESSAGES 4 also asks for the response headers and the
buffered response body in its reply to the request headers (mode_override, as edge-ext does for
an answer it reads) and answers them with constants too: the floor of a request whose answer is
read.
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc


def replies(cluster: str, messages: int = 2) -> dict[str, pb.ProcessingResponse]:
    """The constant reply to each message kind."""
    headers = pb.ProcessingResponse(request_headers=pb.HeadersResponse())
    if messages == 4:
        # An override replaces the whole mode: the request side is restated, as edge-ext does.
        headers.mode_override.CopyFrom(pb.ProcessingMode(
            request_header_mode=pb.ProcessingMode.SEND, request_body_mode=pb.ProcessingMode.BUFFERED,
            response_header_mode=pb.ProcessingMode.SEND, response_body_mode=pb.ProcessingMode.BUFFERED,
            request_trailer_mode=pb.ProcessingMode.SKIP, response_trailer_mode=pb.ProcessingMode.SKIP))
    elif messages != 2:
        raise ValueError("the floor answers 2 or 4 messages")
    body = pb.ProcessingResponse()
    mutation = body.request_body.response.header_mutation
    mutation.set_headers.add(header=pb.HeaderValue(key="x-edge-cluster", raw_value=cluster.encode()))
    body.request_body.response.clear_route_cache = True
    return {"request_headers": headers, "request_body": body,
            "response_headers": pb.ProcessingResponse(response_headers=pb.HeadersResponse()),
            "response_body": pb.ProcessingResponse(response_body=pb.BodyResponse())}


class Floor(service_pb2_grpc.ExternalProcessorServicer):
    def __init__(self, cluster: str, messages: int = 2):
        self.replies, self.messages = replies(cluster, messages), messages

    async def Process(self, request_iterator, context):
        replies = self.replies
        async for request in request_iterator:
            kind = request.WhichOneof("request")
            yield replies[kind]
            if kind == "request_body" and self.messages == 2:
                # The bootstrap sends response headers statically (edge-ext's 2-message path):
                # ending the stream is how a processor declines them.
                return


async def serve(address: str, cluster: str, messages: int = 2) -> None:
    server = grpc.aio.server()
    service_pb2_grpc.add_ExternalProcessorServicer_to_server(Floor(cluster, messages), server)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("envoy.service.ext_proc.v3.ExternalProcessor", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    import uvloop  # as edge-ext's workers do: it measured 15-20% faster here

    uvloop.install()
    asyncio.run(serve(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2))
