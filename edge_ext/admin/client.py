"""A client of one worker's admin API (or the edge's own): its socket and token come from the instance's config."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import grpc

from edge_ext.admin.pb import admin_pb2_grpc
from edge_ext.config.instance import admin_token
from edge_ext.config.models import Config
from edge_ext.errors import ConfigError

T = TypeVar("T")


class AdminClient:
    """Synchronous stub whose every call carries the admin token."""

    def __init__(self, config: Config, index: int = 0, token: str | None = None, address: str | None = None):
        token = token or admin_token(config.processor.admin_token_path, create=False)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._channel = grpc.insecure_channel(address or config.processor.admin_address(index))
        self._stub = admin_pb2_grpc.AdminStub(self._channel)

    def __getattr__(self, method: str):
        call = getattr(self._stub, method)
        return lambda request, timeout=5.0: call(request, timeout=timeout, metadata=self._metadata)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reported(command: str, calls: Callable[[], T]) -> tuple[int, T | None]:
    """``calls()`` (admin calls) and 0, or the exit status of a command whose call failed, said on
    stderr as ``edge-ext <command>: ...``: 2 when the instance's socket or token is unusable (not
    this instance, or never started), 1 when the call itself failed."""
    try:
        return 0, calls()
    except (OSError, ConfigError) as exc:
        print(f"edge-ext {command}: {exc}", file=sys.stderr)
        return 2, None
    except grpc.RpcError as exc:
        print(f"edge-ext {command}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1, None
