"""A small declarative schema for request bodies: the JSON type of every field the edge reads.

Checked once, before anything else reads the body (routing, translation, PII, cache keys, cost
estimates), so that code may trust the types it is given: a wrongly typed field is a 400 naming
the field, never an exception deep in a translator. Fields a schema does not name pass through
unchecked (providers keep adding them); ``null`` counts as absent, as both APIs treat it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_ext.errors import InvalidRequest

# A path is built as nested pairs (parent, key) and spelled out only for an error message.
Path = tuple[Any, str | int] | None
Style = Callable[[list[str | int]], str]


def openai_style(parts: list[str | int]) -> str:
    """``messages[0].content`` as OpenAI names fields."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def anthropic_style(parts: list[str | int]) -> str:
    """``messages.0.content`` as Anthropic names fields."""
    return ".".join(str(part) for part in parts)


def spell(path: Path, style: Style) -> str:
    parts: list[str | int] = []
    while path is not None:
        path, key = path
        parts.append(key)
    return style(parts[::-1])


class Spec:
    describe = "valid"

    def check(self, value: Any, path: Path, style: Style) -> None:
        raise NotImplementedError

    def fail(self, path: Path, style: Style, what: str | None = None) -> InvalidRequest:
        name = spell(path, style)
        return InvalidRequest(f"'{name}' must be {what or self.describe}", param=name)


@dataclass(frozen=True)
class Scalar(Spec):
    types: tuple[type, ...]
    describe: str

    def check(self, value: Any, path: Path, style: Style) -> None:
        # bool is an int to Python, never to JSON schemas.
        if type(value) not in self.types:
            raise self.fail(path, style)


STR = Scalar((str,), "a string")
BOOL = Scalar((bool,), "a boolean")
INT = Scalar((int,), "an integer")
ANY_OBJECT = Scalar((dict,), "an object")


@dataclass(frozen=True)
class Obj(Spec):
    """An object; the named fields have these types when present and not null."""

    fields: Mapping[str, Spec] = field(default_factory=dict)
    describe: str = "an object"

    def check(self, value: Any, path: Path, style: Style) -> None:
        if not isinstance(value, dict):
            raise self.fail(path, style)
        fields = self.fields
        # Objects are small and schemas name more fields than a request uses: walk the object.
        for name, child in value.items():
            spec = fields.get(name)
            if spec is not None and child is not None:
                spec.check(child, (path, name), style)


@dataclass(frozen=True)
class Array(Spec):
    item: Spec
    describe: str = "an array"

    def check(self, value: Any, path: Path, style: Style) -> None:
        if not isinstance(value, list):
            raise self.fail(path, style)
        item = self.item
        for index, child in enumerate(value):
            if child is None:
                raise item.fail((path, index), style)
            item.check(child, (path, index), style)


@dataclass(frozen=True)
class Either(Spec):
    """One of several specs, chosen by the value's JSON type (string, array, object...)."""

    by_type: Mapping[type, Spec]
    describe: str

    def check(self, value: Any, path: Path, style: Style) -> None:
        spec = None if isinstance(value, bool) else self.by_type.get(type(value))
        if spec is None:
            raise self.fail(path, style)
        spec.check(value, path, style)


@dataclass(frozen=True)
class Tagged(Spec):
    """An object whose ``type`` string picks its spec; unknown types pass (the provider, or the
    translator, names what it does not support)."""

    variants: Mapping[str, Obj]
    default: str | None = None  # the type when the field is absent; None: it is required
    describe: str = "an object with a string 'type'"

    def check(self, value: Any, path: Path, style: Style) -> None:
        if not isinstance(value, dict):
            raise self.fail(path, style)
        kind = value.get("type", self.default)
        if not isinstance(kind, str):
            name = spell((path, "type"), style)
            raise InvalidRequest(f"'{name}' must be a string", param=name)
        spec = self.variants.get(kind)
        if spec is not None:
            spec.check(value, path, style)


def check(body: dict[str, Any], schema: Obj, style: Style) -> None:
    schema.check(body, None, style)
