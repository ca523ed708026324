"""The TCP ports `edge-ext up` and `serve` will listen on, checked before anything starts.

Without it, Envoy finds its listener or admin port taken only after the workers run (then
exits, stopping the edge), and a taken metrics port ends the command in a traceback; a check
first gives one clear line per port and no half-started edge. The check binds as Envoy does (SO_REUSEADDR, so a port in TIME_WAIT is free) and without
SO_REUSEPORT, so a second Envoy that would silently share the port with the first is caught too.
What binds a port between the check and its own start still fails, later and less clearly.
"""

from __future__ import annotations

import errno
import socket

from edge_ext.config.models import Config


def planned(config: Config, *, with_envoy: bool, mocks: tuple[tuple[str, int], ...] = ()) -> list[tuple[str, str, int]]:
    """(what, host, port) of every TCP port this edge binds. Ports given as 0 (any) are left out."""
    ports = []
    if with_envoy:
        ports.append(("listen.port", config.listen.host, config.listen.port))
        if config.envoy.admin.port:
            ports.append(("envoy.admin.port", config.envoy.admin.host, config.envoy.admin.port))
    if config.metrics.enabled:
        ports.append(("metrics.port", config.metrics.host, config.metrics.port))
    if not config.processor.is_unix:
        for index in range(config.processor.worker_count()):
            host, _, port = config.processor.worker_address(index).rpartition(":")
            ports.append((f"processor.address (worker {index})", host.strip("[]"), int(port)))
    ports.extend(("mock provider", host, port) for host, port in mocks)
    return [p for p in ports if p[2]]


def problems(ports: list[tuple[str, str, int]]) -> list[str]:
    """One line for each port that cannot be bound now, naming the setting it comes from."""
    found, seen = [], set()
    for what, host, port in ports:
        if (host, port) in seen:
            found.append(f"{host}:{port} ({what}) is also used by another setting")
            continue
        seen.add((host, port))
        error = _bind_error(host, port)
        if error:
            found.append(f"{host}:{port} ({what}) {error}")
    return found


def _bind_error(host: str, port: int) -> str | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot be resolved: {exc.strerror}"
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "is already in use"
            return f"cannot be bound: {exc.strerror}"
    return None
