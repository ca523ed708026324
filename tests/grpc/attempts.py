"""A failover attempt as the failover cluster's ext_proc filter sees it, for the in-process tests:
two providers in two APIs, and the attempt stream's first message."""

from __future__ import annotations

from edge_ext.config import parse_config
from edge_ext.config.models import Config
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.policy.grant import AttemptGrants

KEYS = {"FIRST_KEY": "sk-first", "NEXT_KEY": "sk-next"}


def two_providers(tmp_path, monkeypatch) -> Config:
    """Provider "first" (OpenAI) and "next" (Anthropic, model m as claude-x), keys in the environment."""
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    return parse_config(f"""
processor: {{address: "unix:{tmp_path}", workers: 1}}
providers:
  - {{name: first, kind: openai, base_url: "http://127.0.0.1:18080", api_key_env: FIRST_KEY, models: [m]}}
  - {{name: next, kind: anthropic, base_url: "http://127.0.0.1:18081", api_key_env: NEXT_KEY, model_map: {{m: claude-x}}}}
""")


def attempt_start(start: pb.ProcessingRequest) -> pb.ProcessingRequest:
    """``start`` (request headers) as the retry to "next" of a request first shaped for "first":
    the endpoint's metadata names the attempt's provider, the forwarded request metadata the
    first provider, the model and the signed plan."""
    host = 'filter_metadata { key: "edge_ext" value { fields { key: "provider" value { string_value: "next" } } } } '
    start.attributes["envoy.filters.http.ext_proc"].fields["xds.upstream_host_metadata"].string_value = host
    grant = dict(AttemptGrants({"first": "sk-first", "next": "sk-next"}).metadata("first", "m", ("first", "next")))
    start.metadata_context.filter_metadata["edge_ext"].update({"provider": "first", "model": "m", "api": "openai", **grant})
    return start
