"""Requests to Envoy's admin interface, over TCP or over its Unix socket.

Envoy's admin can stop the edge (/quitquitquit), drain it and rewrite runtime values: by default
it listens on a Unix socket in the instance's private directory, not on a loopback port every
local user can reach.
"""

from __future__ import annotations

import http.client
import json
import socket


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def request(target: str, method: str, path: str, timeout: float = 1.0) -> bytes:
    """``target`` is ``unix:/path/to/socket`` or ``http://host:port``. Raises OSError on failure."""
    if target.startswith("unix:"):
        conn: http.client.HTTPConnection = _UnixConnection(target[5:], timeout)
    else:
        conn = http.client.HTTPConnection(target.removeprefix("http://"), timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
    except http.client.HTTPException as exc:
        raise OSError(f"envoy admin: {exc}") from exc
    finally:
        conn.close()
    if resp.status >= 400:
        raise OSError(f"envoy admin {path}: HTTP {resp.status}")
    return body


def stat(target: str, name: str) -> int:
    """The value of one exact-named Envoy stat, 0 when absent."""
    body = request(target, "GET", f"/stats?filter=^{name}$&format=json")
    stats = json.loads(body).get("stats", [])
    return int(stats[0]["value"]) if stats else 0
