import json

import pytest

from edge_ext.extproc.convert import header_dict, to_response
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.policy.decisions import Continue, Mode, Respond, ResponseMode


def test_header_dict_reads_raw_value_as_envoy_sends_it():
    hm = pb.HeaderMap(headers=[pb.HeaderValue(key=":path", raw_value=b"/v1/x"), pb.HeaderValue(key="a", value="b")])
    assert header_dict(hm) == {":path": "/v1/x", "a": "b"}


def test_header_dict_replaces_bytes_that_are_not_utf8():
    hm = pb.HeaderMap(headers=[pb.HeaderValue(key="x-bad", raw_value=b"caf\xe9 \xff"),
                               pb.HeaderValue(key="x-good", raw_value="café".encode())])
    assert header_dict(hm) == {"x-bad": "caf\ufffd \ufffd", "x-good": "café"}


def test_empty_continue_is_a_bare_phase_reply():
    response = to_response("request_headers", Continue())
    assert response.WhichOneof("response") == "request_headers"
    assert response.request_headers == pb.HeadersResponse()
    assert not response.HasField("mode_override")


def test_mutations_use_raw_value_only_and_overwrite():
    response = to_response("request_body", Continue(set_headers=(("x-edge-cluster", "c"),), remove_headers=("x-api-key",), clear_route_cache=True))
    common = response.request_body.response
    (option,) = common.header_mutation.set_headers
    assert option.header.key == "x-edge-cluster" and option.header.raw_value == b"c" and option.header.value == ""
    assert option.append_action == pb.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert list(common.header_mutation.remove_headers) == ["x-api-key"]
    assert common.clear_route_cache


def test_clear_route_cache_is_dropped_without_a_header_mutation():
    response = to_response("request_body", Continue(clear_route_cache=True))
    assert not response.request_body.response.clear_route_cache


def test_body_replacement_without_header_mutation():
    response = to_response("response_body", Continue(body=b"12345"))
    common = response.response_body.response
    assert common.body_mutation.body == b"12345"
    # In STREAMED responses headers are gone already: no header mutation may ride along.
    assert not common.HasField("header_mutation")


def test_metadata_and_mode_override_restates_the_request_side():
    decision = Continue(set_headers=(("a", "b"),), metadata=(("provider", "p"),),
                        mode=Mode(response_headers=True, response_body=ResponseMode.STREAMED))
    response = to_response("request_headers", decision)
    assert response.dynamic_metadata["edge_ext"]["provider"] == "p"
    mode = response.mode_override
    assert mode.response_body_mode == pb.ProcessingMode.STREAMED
    assert mode.response_header_mode == pb.ProcessingMode.SEND
    # Envoy replaces the whole mode: without these the request body would no longer be sent.
    assert mode.request_header_mode == pb.ProcessingMode.SEND
    assert mode.request_body_mode == pb.ProcessingMode.BUFFERED


@pytest.mark.parametrize("metadata, expected", [
    pytest.param((("a", "1"), ("b", "2")), {"a": "1", "b": "2"}, id="strings"),
    pytest.param((("a", "1"), ("b", "2"), ("a", "3")), {"a": "3", "b": "2"}, id="a-repeated-key-keeps-its-last-value"),
    pytest.param((("n", 2), ("t", True), ("z", None)), {"n": 2.0, "t": True, "z": None}, id="other-values-as-a-struct-has-them"),
])
def test_metadata_is_written_under_our_namespace(metadata, expected):
    response = to_response("request_body", Continue(metadata=metadata, last=True))
    assert dict(response.dynamic_metadata["edge_ext"].items()) == expected
    assert list(response.dynamic_metadata.keys()) == ["edge_ext"]


def test_a_reply_without_a_mutation_still_carries_its_common_response():
    response = to_response("request_body", Continue(metadata=(("a", "1"),)))
    assert response.request_body.HasField("response") and not response.request_body.response.HasField("header_mutation")


def test_a_repeated_large_answer_reuses_its_reply_until_it_changes():
    body = b'{"choices":[]}' + b" " * 1000

    def hit(age, entry=body):
        return Respond(200, entry, (("content-type", "application/json"), ("age", age)), "edge_ext_cache_hit_l1")

    first = to_response("request_body", hit("3"))
    assert to_response("request_body", hit("3")) is first  # a hot cache entry within the same second
    later = to_response("request_body", hit("4"))
    assert later is not first and later.immediate_response.headers.set_headers[1].header.raw_value == b"4"
    other = to_response("request_body", hit("4", entry=bytes(reversed(body))))
    assert other.immediate_response.body == bytes(reversed(body))
    again = to_response("request_body", hit("4"))
    assert again is not later and again.immediate_response.body == body  # only the last one is kept


def test_immediate_response_is_marked_as_ours():
    response = to_response("request_body", Respond(404, b'{"error":{}}', (("content-type", "application/json"),), "edge_ext_model_not_found"))
    ir = response.immediate_response
    assert ir.status.code == 404 and json.loads(ir.body) == {"error": {}}
    assert ir.details == "edge_ext_model_not_found"
    assert ir.headers.set_headers[0].header.raw_value == b"application/json"
    # local_reply_config leaves replies carrying this metadata alone.
    assert response.dynamic_metadata["edge_ext"]["reply"] == "edge_ext"


def test_equal_decisions_reuse_one_reply_and_large_bodies_are_not_cached():
    routed = Continue(set_headers=(("x-edge-cluster", "c"),), clear_route_cache=True, metadata=(("provider", "p"),))
    assert to_response("request_body", routed) is to_response("request_body", Continue(**{
        "set_headers": (("x-edge-cluster", "c"),), "clear_route_cache": True, "metadata": (("provider", "p"),)}))
    big = Continue(body=b"x" * 1000)
    assert to_response("response_body", big) is not to_response("response_body", big)
