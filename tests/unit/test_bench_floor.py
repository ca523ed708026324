"""The benchmark's floor replaying edge-ext's own replies must replay a routed pass request's:
otherwise the case it feeds would stop measuring Envoy's share of a pass."""

from edge_ext.extproc.convert import METADATA_NAMESPACE
from edge_ext.policy.route_step import CLUSTER_HEADER
from tests.bench.floor import edge_replies


def test_the_replayed_replies_are_those_of_a_routed_pass_request():
    replies = edge_replies()

    body = replies["request_body"].request_body.response
    set_headers = {h.header.key: h.header.raw_value for h in body.header_mutation.set_headers}
    assert set_headers[CLUSTER_HEADER] == b"provider_bench"
    assert body.clear_route_cache
    marks = replies["request_body"].dynamic_metadata.fields[METADATA_NAMESPACE].struct_value.fields
    # The mark that has Envoy send the request's outcome entry, so the case pays for it too.
    assert marks["outcome"].string_value == "1"
    assert marks["provider"].string_value == "bench"
    assert replies["request_headers"].HasField("request_headers")
