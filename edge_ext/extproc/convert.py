"""Decisions -> ProcessingResponse protos, and proto header maps -> plain dicts."""

from __future__ import annotations

from functools import lru_cache

from google.protobuf import struct_pb2

from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.policy.decisions import Continue, Mode, Respond, ResponseMode

_OVERWRITE = pb.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_MODE = {
    ResponseMode.NONE: pb.ProcessingMode.NONE,
    ResponseMode.BUFFERED: pb.ProcessingMode.BUFFERED,
    ResponseMode.STREAMED: pb.ProcessingMode.STREAMED,
}
METADATA_NAMESPACE = "edge_ext"


def header_dict(header_map: pb.HeaderMap) -> dict[str, str]:
    # Envoy 1.40 sends values in raw_value (bytes) and leaves value empty. Empty bytes decode to
    # "", which falls back to value: one read of raw_value instead of two. A loop, not a
    # comprehension: one frame less on every request. decode() without arguments takes
    # CPython's UTF-8 fast path; the rare value that is not UTF-8 is decoded again, replacing.
    headers = {}
    for h in header_map.headers:
        try:
            headers[h.key] = h.raw_value.decode() or h.value
        except UnicodeDecodeError:
            headers[h.key] = h.raw_value.decode("utf-8", "replace")
    return headers


# The reply is filled in place, field by field: building each part as a message of its own and
# copying it in (CopyFrom) cost a second message per part, and the metadata struct's generic
# update() tests each value's type in Python.
def _fill_mutation(mutation: pb.HeaderMutation, set_headers, remove_headers) -> None:
    if remove_headers:
        mutation.remove_headers.extend(remove_headers)
    add = mutation.set_headers.add
    for key, value in set_headers:
        # Only raw_value: setting value and raw_value together makes Envoy answer 500.
        header = add(append_action=_OVERWRITE).header
        header.key = key
        header.raw_value = value.encode()


def _fill_metadata(md: struct_pb2.Struct, values) -> None:
    """``values`` under our namespace; the last of a repeated key wins, as in a dict."""
    namespace = md.fields[METADATA_NAMESPACE].struct_value
    namespace.Clear()  # present even when ``values`` is empty
    fields = namespace.fields
    for key, value in values:
        if type(value) is str:
            fields[key].string_value = value
        else:
            namespace.update({key: value})  # not ours to send, but sent as the struct would


def _fill_common(common: pb.CommonResponse, decision: Continue) -> None:
    set_headers = decision.set_headers
    if decision.body is not None:
        common.body_mutation.body = decision.body
    if set_headers or decision.remove_headers:
        _fill_mutation(common.header_mutation, set_headers, decision.remove_headers)
    # Envoy ignores clear_route_cache unless the same reply mutates a header.
    common.clear_route_cache = decision.clear_route_cache and bool(set_headers or decision.remove_headers)


def continue_response(phase: str, decision: Continue) -> pb.ProcessingResponse:
    """``phase`` is the ProcessingResponse oneof field name, e.g. 'request_body'."""
    response = pb.ProcessingResponse()
    if decision == _EMPTY:
        getattr(response, phase).SetInParent()
        return response
    common = getattr(response, phase).response
    common.SetInParent()  # an empty CommonResponse is still sent
    _fill_common(common, decision)
    if decision.metadata:
        _fill_metadata(response.dynamic_metadata, decision.metadata)
    if decision.mode is not None:
        response.mode_override.CopyFrom(_mode(decision.mode))
    return response


def _mode(mode: Mode) -> pb.ProcessingMode:
    # An override replaces the whole mode, request side included: restate it, or Envoy stops
    # sending the request body.
    return pb.ProcessingMode(
        request_header_mode=pb.ProcessingMode.SEND,
        request_body_mode=pb.ProcessingMode.BUFFERED if mode.request_body else pb.ProcessingMode.NONE,
        response_header_mode=pb.ProcessingMode.SEND if mode.response_headers else pb.ProcessingMode.SKIP,
        response_body_mode=_MODE[mode.response_body],
        request_trailer_mode=pb.ProcessingMode.SKIP,
        response_trailer_mode=pb.ProcessingMode.SKIP,
    )


def immediate_response(decision: Respond) -> pb.ProcessingResponse:
    response = pb.ProcessingResponse()
    ir = response.immediate_response
    ir.status.code = decision.status
    ir.body = decision.body
    ir.details = decision.details
    if decision.headers:
        _fill_mutation(ir.headers, decision.headers, ())
    # Marks the local reply as ours, so Envoy's local_reply_config leaves its body alone.
    _fill_metadata(response.dynamic_metadata, (("reply", "edge_ext"), *decision.metadata))
    return response


_EMPTY = Continue()


def _convert(phase: str, decision: Continue | Respond) -> pb.ProcessingResponse:
    if isinstance(decision, Respond):
        return immediate_response(decision)
    return continue_response(phase, decision)


# Many decisions repeat: every request-headers reply is one of two constants, and requests
# routed alike get the same headers. Building a reply costs more than hashing the decision, and
# gRPC only reads the message it is given, so a reply is built once and reused. Decisions that
# carry per-request values (budget holds, input estimates) never repeat, and each reply kept
# costs about 6 KiB of protobuf memory outside the Python heap: 4,096 slots grew a worker by
# 26 MiB of replies never used again. A few hundred keep what repeats (it stays recently used).
REPLY_CACHE_SIZE = 256
_cached = lru_cache(maxsize=REPLY_CACHE_SIZE)(_convert)


def extend_timeout(seconds: float) -> pb.ProcessingResponse:
    response = pb.ProcessingResponse()
    response.override_message_timeout.FromMilliseconds(int(seconds * 1000))
    return response


# The last decision converted for each phase, and its reply: most request-headers replies are
# one constant decision, found by identity without hashing it (the dataclasses' __hash__ and
# __eq__, Mode's and the enum's inside, are Python). Held here, an object's id cannot be reused.
_last: dict[str, tuple[Continue | Respond, pb.ProcessingResponse]] = {}


def to_response(phase: str, decision: Continue | Respond) -> pb.ProcessingResponse:
    last = _last.get(phase)
    if last is not None and last[0] is decision:
        return last[1]
    if decision.body is not None and len(decision.body) > 256:
        if type(decision) is Respond:
            return _large_answer(phase, decision)
        return _convert(phase, decision)  # large bodies are one-off: not worth a cache slot
    response = _cached(phase, decision)
    _last[phase] = (decision, response)
    return response


# A cache hit answers with the stored entry's body (the same bytes object for every hit on L1)
# and an age header that changes once a second: a hot entry repeats the same large answer. One
# slot per phase keeps the last one (one large body held twice at most), found by equality: the
# same bytes object compares at once, other bodies by memcmp.
_last_large: dict[str, tuple[Respond, pb.ProcessingResponse]] = {}


def _large_answer(phase: str, decision: Respond) -> pb.ProcessingResponse:
    last = _last_large.get(phase)
    if last is not None and last[0] == decision:
        return last[1]
    response = immediate_response(decision)
    _last_large[phase] = (decision, response)
    return response
