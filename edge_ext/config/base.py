"""The base of every config model: frozen, and unknown keys rejected.

Kept apart from ``models`` so that each section module can build on it
without importing the root schema (which imports them all).
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def read_secret(env: str | None, file: str | None) -> str | None:
    """A credential from an environment variable or a file; None when unset or empty."""
    if env:
        return os.environ.get(env) or None
    if file:
        try:
            with open(file, encoding="utf-8") as fh:
                return fh.read().strip() or None
        except OSError:
            return None
    return None
