"""The floor: a processor doing the least any router must (constant replies, no parsing).

    python -m tests.bench.floor UNIX_SOCKET_PATH CLUSTER [MESSAGES] [--option KEY=VALUE ...]
        [--loop uvloop|asyncio] [--handler proto|raw]

The benchmark runs it behind the same Envoy bootstrap as edge-ext to show how much of the cost
is grpc.aio and Envoy's ext_proc round trips, and how much is edge-ext's own policy. Its server
takes edge-ext's transport options (edge_ext.extproc.server.TRANSPORT_OPTIONS); `--option`
adds or overrides one (tests/bench/floor_variants.py measures them).

MESSAGES 2 (the default) answers the request headers and body, as a cache hit or a request that
needs nothing from the answer does. MESSAGES 4 also asks for the response headers and the
buffered response body in its reply to the request headers (mode_override, as edge-ext does for
an answer it reads) and answers them with constants too: the floor of a request whose answer is
read.

`--handler raw` serves the same replies as prebuilt bytes through a generic handler whose
(de)serializers are the identity: no protobuf work at all, the kind of each message read from
its first tag.

`--edge-replies` (2 messages) replays edge-ext's own replies to a pass request instead of the
constants: made once at start by edge-ext's policy in process (tests/bench/pass_cost.py), so
they carry everything a routed request's do (credentials and header rewrites, the request's
metadata, the mark that has Envoy send its outcome). Behind a bootstrap that keeps the outcome
access log, Envoy then does all it does for a pass request (usage extraction, the outcome entry)
while the processor does no policy: the case tells Envoy's share of a pass's cost from the
policy's. The access log entries are read and dropped.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edge_ext.extproc.pb import accesslog_pb2, als_service_pb2_grpc
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc
from edge_ext.extproc.server import TRANSPORT_OPTIONS

PROCESS_METHOD = "Process"
SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"


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


def edge_replies() -> dict[str, pb.ProcessingResponse]:
    """edge-ext's replies to the request headers and body of the benchmark's pass request."""
    from tests.bench.pass_cost import drive, messages, started_worker

    async def made() -> list[bytes]:
        deps, servicer = await started_worker("edge-floor-replies-")
        try:
            return await drive(servicer, messages(1))
        finally:
            for service in reversed(deps.services):
                await service.aclose()

    first, second = (pb.ProcessingResponse.FromString(raw) for raw in asyncio.run(made()))
    assert first.HasField("request_headers") and second.HasField("request_body"), "not a pass request's replies"
    return {"request_headers": first, "request_body": second}


class Sink(als_service_pb2_grpc.AccessLogServiceServicer):
    """Reads the outcome entries Envoy sends (parsed, as edge-ext's workers parse them) and drops them."""

    async def StreamAccessLogs(self, request_iterator, context):
        async for _ in request_iterator:
            pass
        return accesslog_pb2.StreamAccessLogsResponse()


class Floor(service_pb2_grpc.ExternalProcessorServicer):
    def __init__(self, cluster: str, messages: int = 2, replayed: dict[str, pb.ProcessingResponse] | None = None):
        self.replies, self.messages = {**replies(cluster, messages), **(replayed or {})}, messages

    async def Process(self, request_iterator, context):
        replies = self.replies
        async for request in request_iterator:
            kind = request.WhichOneof("request")
            yield replies[kind]
            if kind == "request_body" and self.messages == 2:
                # The bootstrap sends response headers statically (edge-ext's 2-message path):
                # ending the stream is how a processor declines them.
                return


def _identity(data: bytes) -> bytes:
    return data


def raw_handler(cluster: str, messages: int = 2) -> grpc.GenericRpcHandler:
    """The same replies, prebuilt as bytes. A ProcessingRequest's kind is its oneof field, which
    Envoy serializes first (fields 2-7: request_headers .. response_trailers)."""
    field = {pb.ProcessingRequest.DESCRIPTOR.fields_by_name[k].number: k for k in replies(cluster, messages)}
    prebuilt = {number: replies(cluster, messages)[kind].SerializeToString() for number, kind in field.items()}
    body_field = pb.ProcessingRequest.DESCRIPTOR.fields_by_name["request_body"].number

    async def process(request_iterator, context):
        async for request in request_iterator:
            number = request[0] >> 3
            yield prebuilt[number]
            if number == body_field and messages == 2:
                return

    handler = grpc.stream_stream_rpc_method_handler(process, request_deserializer=_identity, response_serializer=_identity)
    return grpc.method_handlers_generic_handler(SERVICE, {PROCESS_METHOD: handler})


def parse_option(text: str) -> tuple[str, int | str]:
    key, _, value = text.partition("=")
    return key, int(value) if value.lstrip("-").isdigit() else value


async def serve(address: str, cluster: str, messages: int = 2, options: list[tuple[str, int | str]] = (),
                handler: str = "proto", replayed: dict[str, pb.ProcessingResponse] | None = None) -> None:
    merged = dict(TRANSPORT_OPTIONS)
    merged.update(options)
    server = grpc.aio.server(options=list(merged.items()))
    if handler == "raw":
        server.add_generic_rpc_handlers([raw_handler(cluster, messages)])
    else:
        service_pb2_grpc.add_ExternalProcessorServicer_to_server(Floor(cluster, messages, replayed), server)
    als_service_pb2_grpc.add_AccessLogServiceServicer_to_server(Sink(), server)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(address)
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address")
    parser.add_argument("cluster")
    parser.add_argument("messages", nargs="?", type=int, default=2)
    parser.add_argument("--option", action="append", default=[], type=parse_option, help="a grpc server option KEY=VALUE")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--handler", choices=("proto", "raw"), default="proto")
    parser.add_argument("--edge-replies", action="store_true", help="replay edge-ext's replies to a pass request (2 messages)")
    args = parser.parse_args(argv)
    if args.edge_replies and (args.messages != 2 or args.handler != "proto"):
        parser.error("--edge-replies replays the 2 replies of a pass request, through the proto handler")
    replayed = edge_replies() if args.edge_replies else None
    if args.loop == "uvloop":
        import uvloop  # as edge-ext's workers do: it measured 15-20% faster here

        uvloop.install()
    asyncio.run(serve(args.address, args.cluster, args.messages, args.option, args.handler, replayed))


if __name__ == "__main__":
    main()
