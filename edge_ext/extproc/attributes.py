"""What Envoy tells the processor beyond headers and bodies: attributes and forwarded metadata.

Envoy sends the attributes a filter asks for (``request_attributes`` / ``response_attributes``)
on the first message of each direction, under the filter's name. Metadata-valued ones, such as
``xds.upstream_host_metadata``, arrive as the proto's text format, not as a struct.
"""

from __future__ import annotations

import re

from edge_ext.extproc.convert import METADATA_NAMESPACE
from edge_ext.extproc.pb import ext_proc_pb2 as pb

ATTRIBUTES = "envoy.filters.http.ext_proc"
HOST_METADATA = "xds.upstream_host_metadata"
ATTEMPT_COUNT = "upstream.request_attempt_count"
# The provider name the rendered config puts in each provider endpoint's edge_ext metadata.
_PROVIDER = re.compile(r'key: "provider" value \{ string_value: "([a-z0-9-]+)" \}')


def _provider(text: str) -> str:
    match = _PROVIDER.search(text)
    return match.group(1) if match else ""


def attempt_provider(request: pb.ProcessingRequest) -> str | None:
    """The provider of a retry attempt's endpoint; None for a stream of the router-level filter."""
    if not request.attributes:
        return None
    attrs = request.attributes.get(ATTRIBUTES)
    if attrs is None or HOST_METADATA not in attrs.fields:
        return None
    return _provider(attrs.fields[HOST_METADATA].string_value)


def route_metadata(request: pb.ProcessingRequest) -> dict[str, str]:
    """The request's edge_ext dynamic metadata, forwarded to the failover cluster's filter."""
    namespace = request.metadata_context.filter_metadata.get(METADATA_NAMESPACE)
    if namespace is None:
        return {}
    return {key: value.string_value for key, value in namespace.fields.items()}


def upstream_of(request: pb.ProcessingRequest) -> tuple[str, int]:
    """(provider that answered, attempts Envoy made) from a response message; ("", 1) if unknown."""
    attrs = request.attributes.get(ATTRIBUTES)
    if attrs is None:
        return "", 1
    fields = attrs.fields
    provider = _provider(fields[HOST_METADATA].string_value) if HOST_METADATA in fields else ""
    attempts = int(fields[ATTEMPT_COUNT].number_value) if ATTEMPT_COUNT in fields else 1
    return provider, attempts
