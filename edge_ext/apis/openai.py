"""The OpenAI API shape as clients speak it: error bodies and request basics."""

from __future__ import annotations

import json

from edge_ext.errors import EdgeError
from edge_ext.policy.decisions import Respond

JSON = (("content-type", "application/json"),)


def error_body(err: EdgeError) -> bytes:
    return json.dumps(
        {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}},
        separators=(",", ":"),
    ).encode()


def error_response(err: EdgeError) -> Respond:
    return Respond(err.status, error_body(err), JSON + err.headers, f"edge_ext_{err.code}")
