"""In-process cost of a cache hit answered from L1, for instruction counts.

    python -m tests.bench.hit_cost [--requests 500]
    valgrind --tool=callgrind --instr-atstart=no --vgdb-prefix=P python -m tests.bench.hit_cost --callgrind --vgdb-prefix=P

The worker of ``tests.bench.pass_cost`` (its config, ``build_worker``, no gRPC). One cacheable
request (``"temperature": 0``) goes through its four messages (request headers and body, the
answer's headers and a JSON chat.completion body), which stores the answer; after a warm-up of
identical requests answered from L1, ``--requests`` more are driven through their two messages
(request headers, request body answered with an immediate response). Under callgrind only that
part is counted and dumped (part ``hits``): its ``totals`` / N is the cost of one hit.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json

from tests.bench.pass_cost import REQUEST, control, run_on_uvloop, started_worker

BODY = json.dumps({**REQUEST, "temperature": 0}).encode()
ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello, benchmark! " * 20},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 9, "total_tokens": 28},
}).encode()


def _headers(values: dict[str, str]):
    from edge_ext.extproc.pb import ext_proc_pb2 as pb

    headers = pb.HeaderMap()
    for key, value in values.items():
        headers.headers.add(key=key, raw_value=value.encode())
    return headers


def request(i: int) -> list[bytes]:
    from edge_ext.extproc.pb import ext_proc_pb2 as pb

    headers = _headers({":authority": "127.0.0.1:10000", ":path": "/v1/chat/completions", ":method": "POST",
                        ":scheme": "http", "content-type": "application/json", "content-length": str(len(BODY)),
                        "user-agent": "wrk", "x-forwarded-proto": "http",
                        "x-request-id": f"5e1c7a4b-0000-4000-8000-{i:012d}"})
    return [pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=headers)).SerializeToString(),
            pb.ProcessingRequest(request_body=pb.HttpBody(body=BODY, end_of_stream=True)).SerializeToString()]


def answer() -> list[bytes]:
    from edge_ext.extproc.pb import ext_proc_pb2 as pb

    headers = _headers({":status": "200", "content-type": "application/json", "content-length": str(len(ANSWER))})
    return [pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=headers)).SerializeToString(),
            pb.ProcessingRequest(response_body=pb.HttpBody(body=ANSWER, end_of_stream=True)).SerializeToString()]


async def drive(servicer, streams: list[list[bytes]]) -> list:
    from edge_ext.extproc.pb import ext_proc_pb2 as pb

    replies = []
    for wire in streams:
        async def stream(wire=wire):
            for raw in wire:
                yield pb.ProcessingRequest.FromString(raw)

        async for reply in servicer.Process(stream(), None):
            replies.append(reply.SerializeToString())
    return replies


def hits(replies: list[bytes]) -> bool:
    from edge_ext.extproc.pb import ext_proc_pb2 as pb

    answers = [pb.ProcessingResponse.FromString(raw) for raw in replies[1::2]]
    return all(r.HasField("immediate_response") and r.immediate_response.body == ANSWER for r in answers)


async def main_async(args) -> None:

    deps, servicer = await started_worker("edge-hit-cost-")
    stored = await drive(servicer, [request(0) + answer()])
    assert len(stored) == 4, "the first request was not routed and answered"
    await asyncio.sleep(0.2)  # the store is an effect run off the request
    warm = await drive(servicer, [request(i) for i in range(1, 201)])
    assert hits(warm), "the warm-up was not answered from the cache"
    streams = [request(i) for i in range(args.requests)]
    gc.freeze()  # as a worker does once started
    control(args, "-i", "on")
    replies = await drive(servicer, streams)
    control(args, "--dump=hits")
    control(args, "-i", "off")
    assert len(replies) == 2 * args.requests and hits(replies)
    for service in reversed(deps.services):
        await service.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="hits counted (bounded)")
    parser.add_argument("--callgrind", action="store_true", help="running under callgrind with --instr-atstart=no")
    parser.add_argument("--vgdb-prefix", default="", help="valgrind's --vgdb-prefix, if given")
    run_on_uvloop(main_async(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
