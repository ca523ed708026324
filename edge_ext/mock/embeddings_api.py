"""OpenAI and Azure OpenAI embeddings endpoints, answered with deterministic vectors
(edge_ext.mock.vectors), so the semantic cache works in tests and the demo without keys.

The same prelude as the chat endpoints: recorded, and subject to scripted faults and latency
(``POST /_mock/faults`` with ``"path": "/v1/embeddings"``).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from aiohttp import web

from .errors import AZURE, OPENAI
from .openai_api import _azure_auth_error, _azure_version_missing, _openai_auth_error
from .pipeline import Exchange, begin
from .tokens import count_text
from .vectors import DEFAULT_DIMS, embed

_MAX_INPUTS = 2048
_MAX_DIMS = 4096


def _inputs(body: Any) -> list[str] | str:
    """The texts to embed, or the error message."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    value = body.get("input")
    if value is None:
        return "Missing required parameter: 'input'."
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or len(texts) > _MAX_INPUTS:
        return f"'input' must be a non-empty string or an array of at most {_MAX_INPUTS} strings."
    if not all(isinstance(t, str) and t for t in texts):
        return "'input' must hold non-empty strings (token arrays are not supported by this mock)."
    return texts


def _encode(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


async def _answer(ex: Exchange, model: str) -> web.StreamResponse:
    texts = _inputs(ex.body)
    if isinstance(texts, str):
        return ex.error(400, texts, param="input")
    dims = ex.body.get("dimensions", DEFAULT_DIMS)
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= _MAX_DIMS:
        return ex.error(400, f"'dimensions' must be an integer from 1 to {_MAX_DIMS}.", param="dimensions")
    fmt = ex.body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        return ex.error(400, "'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    tokens = sum(count_text(t) for t in texts)
    return await ex.json({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": _encode(embed(t, dims), fmt)}
                 for i, t in enumerate(texts)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


async def embeddings(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, OPENAI, _openai_auth_error)
    if not isinstance(ex, Exchange):
        return ex
    model = ex.body.get("model") if isinstance(ex.body, dict) else None
    if not isinstance(model, str) or not model:
        return ex.error(400, "Missing required parameter: 'model'.", param="model")
    return await _answer(ex, model)


async def azure_embeddings(request: web.Request) -> web.StreamResponse:
    ex = await begin(request, AZURE, _azure_auth_error, _azure_version_missing)
    if not isinstance(ex, Exchange):
        return ex
    return await _answer(ex, request.match_info["deployment"])
