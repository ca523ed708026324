import json

from edge_ext.extproc.convert import header_dict, to_response
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.policy.decisions import Continue, Respond, ResponseMode


def test_header_dict_reads_raw_value_as_envoy_sends_it():
    hm = pb.HeaderMap(headers=[pb.HeaderValue(key=":path", raw_value=b"/v1/x"), pb.HeaderValue(key="a", value="b")])
    assert header_dict(hm) == {":path": "/v1/x", "a": "b"}


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


def test_body_replacement_sets_content_length():
    response = to_response("request_body", Continue(body=b"12345"))
    common = response.request_body.response
    assert common.body_mutation.body == b"12345"
    values = {o.header.key: o.header.raw_value for o in common.header_mutation.set_headers}
    assert values["content-length"] == b"5"


def test_metadata_and_mode_override():
    response = to_response("request_headers", Continue(set_headers=(("a", "b"),), metadata={"provider": "p"}, response_mode=ResponseMode.STREAMED))
    assert response.dynamic_metadata["edge_ext"]["provider"] == "p"
    assert response.mode_override.response_body_mode == pb.ProcessingMode.STREAMED


def test_immediate_response_is_marked_as_ours():
    response = to_response("request_body", Respond(404, b'{"error":{}}', (("content-type", "application/json"),), "edge_ext_model_not_found"))
    ir = response.immediate_response
    assert ir.status.code == 404 and json.loads(ir.body) == {"error": {}}
    assert ir.details == "edge_ext_model_not_found"
    assert ir.headers.set_headers[0].header.raw_value == b"application/json"
    # local_reply_config leaves replies carrying this metadata alone.
    assert response.dynamic_metadata["edge_ext"]["reply"] == "edge_ext"
