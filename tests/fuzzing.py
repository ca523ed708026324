"""Hypothesis strategies of hostile requests, shared by the fuzz tests of every layer (policy,
in-process gRPC, real Envoy).

Two families: random bytes, JSON and header sets that mostly fail to parse; and type-confused
requests, a valid request of each translation direction with one field anywhere in it replaced
by a JSON value of any type, which reach every reader of the body (validation, translators, PII
policy, cache keys, cost estimates).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import strategies as st

# A fixed seed by default so CI is repeatable; EDGE_EXT_FUZZ_RANDOM=1 explores new inputs.
FUZZ_FIXED = os.environ.get("EDGE_EXT_FUZZ_RANDOM") != "1"

json_scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=50)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
                           max_leaves=30)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "robot", 1]),
                                 "content": json_values})
plausible = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "claude-x", "nope", 3, None]), "messages": st.lists(message, max_size=4) | json_values},
    optional={"temperature": json_values, "top_p": json_values, "max_tokens": json_values, "n": json_values,
              "stream": json_values, "tools": json_values, "stop": json_values, "extra": json_values})


def deep(depth: int) -> bytes:
    return b'{"model":"gpt-4o-mini","messages":' + b"[" * depth + b"]" * depth + b"}"


bodies = (
    plausible.map(lambda v: json.dumps(v).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=300)
    | plausible.map(lambda v: json.dumps(v).encode()).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
    | st.integers(1, 5000).map(deep)
    | st.text(max_size=20).map(lambda t: json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": t * 1000}]}).encode())
    # Embeddings: every input form, and the types around it.
    | st.one_of(json_values, st.lists(st.integers(-2, 99), max_size=4), st.lists(st.text(max_size=8), max_size=4)).map(
        lambda v: json.dumps({"model": "gpt-4o-mini", "input": v}).encode())
)
header_sets = st.dictionaries(
    st.sampled_from(["authorization", "x-api-key", "content-length", "cache-control", "anthropic-version",
                     "x-edge-cache-ttl", "x-edge-cache-enable", "content-type"]),
    st.text(max_size=30), max_size=5)
paths = st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/models", "/health", "/x",
                         "/v1/chat/completions?a=b", "/v1/embeddings", "/v1/messages/count_tokens"])
methods = st.sampled_from(["POST", "GET", "PUT"])

# -- type-confused requests ------------------------------------------------------------------------
# Models of the fuzz configs: gpt-4o-mini is served by an OpenAI provider, claude-x by an Anthropic one.
OPENAI_MODEL, ANTHROPIC_MODEL = "gpt-4o-mini", "claude-x"
PDF = "data:application/pdf;base64,JVBERi0xLjQK"
PNG = "iVBORw0KGgo="

OPENAI_RICH: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "and exact"}]},
        {"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "what is here?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
            {"type": "file", "file": {"file_data": PDF, "filename": "a.pdf"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"x\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "found it"},
        {"role": "assistant", "content": "done", "refusal": None},
        {"role": "user", "content": "thanks"},
    ],
    "tools": [{"type": "function", "function": {"name": "lookup", "description": "find things",
                                                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
    "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    "parallel_tool_calls": False,
    "stop": ["END", "STOP"],
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 64,
    "user": "u-1",
    "response_format": {"type": "text"},
}

ANTHROPIC_RICH: dict[str, Any] = {
    "max_tokens": 64,
    "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "what is here?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a note"}, "title": "note"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "let me look"},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "found it"}]},
            {"type": "text", "text": "thanks"}]},
    ],
    "tools": [{"name": "lookup", "description": "find things",
               "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
    "tool_choice": {"type": "auto"},
    "stop_sequences": ["END"],
    "temperature": 0.5,
    "top_k": 5,
    "metadata": {"user_id": "u-1"},
}

# A Responses API request using every field its schema reads.
RESPONSES_RICH = {
    "instructions": "Be terse.",
    "input": [
        {"role": "user", "content": "hello"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "look"},
                                                        {"type": "input_image", "image_url": "https://x/y.png"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"a\": 1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ],
    "store": False,
    "max_output_tokens": 64,
    "temperature": 0.5,
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
    "tool_choice": "auto",
    "metadata": {"k": "v"},
}

# (client API, path, the valid request) of each translation direction.
DIRECTIONS = {
    "openai-to-openai": ("openai", "/v1/chat/completions", {"model": OPENAI_MODEL, **OPENAI_RICH}),
    "openai-to-anthropic": ("openai", "/v1/chat/completions", {"model": ANTHROPIC_MODEL, **OPENAI_RICH}),
    "anthropic-to-openai": ("anthropic", "/v1/messages", {"model": OPENAI_MODEL, **ANTHROPIC_RICH}),
    "anthropic-to-anthropic": ("anthropic", "/v1/messages", {"model": ANTHROPIC_MODEL, **ANTHROPIC_RICH}),
    "responses-to-openai": ("responses", "/v1/responses", {"model": OPENAI_MODEL, **RESPONSES_RICH}),
}


def field_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value: object fields and array items, at any depth."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found += field_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found += field_paths(child, (*prefix, index))
    return found


def replaced(body: Any, path: tuple, new: Any) -> Any:
    """A copy of ``body`` with the value at ``path`` replaced by ``new``."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(body, dict):
        return {**body, head: replaced(body[head], rest, new)}
    out = list(body)
    out[head] = replaced(body[head], rest, new)
    return out


def _confused(direction: str):
    api, path, body = DIRECTIONS[direction]
    # Wrong types first: a scalar or a container where the body has something else.
    values = json_scalars | st.lists(json_scalars, max_size=3) | st.dictionaries(st.text(max_size=8), json_scalars, max_size=3) | json_values
    return st.tuples(st.just(api), st.just(path), st.sampled_from(field_paths(body)), values).map(
        lambda t: (t[0], t[1], json.dumps(replaced(body, t[2], t[3])).encode()))


# (client API, request path, body): one field of a valid request of some direction given any type.
confused_requests = st.sampled_from(sorted(DIRECTIONS)).flatmap(_confused)
