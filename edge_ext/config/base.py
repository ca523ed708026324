"""The base of every config model: frozen, and unknown keys rejected.

Kept apart from ``models`` so that each section module can build on it
without importing the root schema (which imports them all).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
