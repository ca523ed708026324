"""Which config keys a running edge can change (a reload) and which need a restart.

Everything the workers read is reloadable (they are replaced, edge_ext.supervisor), and so is
everything Envoy reads from its discovery files (edge_ext.envoy_config.dynamic). What stays is
what the running processes themselves are: the worker sockets and their number (the endpoints
of Envoy's processor cluster, fixed in its bootstrap), the instance's private directory and its
admin token, the listener's address, Envoy's admin interface and threads, and the metrics
endpoint the supervisor serves.
"""

from __future__ import annotations

from typing import Any

from edge_ext.config.models import Config

RESTART_ONLY: tuple[tuple[str, ...], ...] = (
    ("listen", "host"),
    ("listen", "port"),
    ("processor", "workers"),
    ("processor", "address"),
    ("processor", "state_dir"),
    ("processor", "mtls"),
    ("processor", "allow_plaintext_tcp"),
    ("processor", "admin_token_file"),
    ("metrics", "enabled"),
    ("metrics", "host"),
    ("metrics", "port"),
    ("envoy", "admin"),
    ("envoy", "concurrency"),
)


def _at(config: Config, path: tuple[str, ...]) -> Any:
    value: Any = config
    for part in path:
        value = getattr(value, part)
    return value


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """One line per key a reload cannot apply, naming the key and both values."""
    return [f"{'.'.join(path)}: changed from {_at(old, path)!r} to {_at(new, path)!r}; this key needs a restart"
            for path in RESTART_ONLY if _at(old, path) != _at(new, path)]
