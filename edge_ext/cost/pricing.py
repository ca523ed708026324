"""The price table: shipped data (edge_ext/data/pricing.yaml) plus config overrides.

Prices are USD per million tokens, held as ``Decimal`` so that costs are exact sums. YAML and
JSON floats are read through their shortest decimal repr (``0.075`` stays ``0.075``, never the
binary ``0.07499999…``), and strings such as ``"2.50"`` are accepted as written.

Overrides have the same shape as the shipped file (``models`` and ``aliases``). They are merged
per model: fields an override sets replace the shipped ones, the rest are kept; a field set to
``null`` is removed, so an optional price falls back to its default again. A model absent from
the shipped file is added and then needs at least ``input`` and ``output``.

Unset ``cached_input`` and ``cache_write`` equal ``input``: a provider that reports no cache
discount bills those tokens as ordinary input (OpenAI bills cache writes that way).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic.fields import FieldInfo

from edge_ext.errors import ConfigError

__all__ = [
    "SHIPPED_PRICING",
    "Price",
    "PriceOverride",
    "PriceTable",
    "PricingOverrides",
    "PricingError",
    "load_pricing",
    "normalize_model",
]

SHIPPED_PRICING = Path(__file__).resolve().parent.parent / "data" / "pricing.yaml"

# One trailing snapshot marker: OpenAI dates (-2024-07-18), Anthropic dates (-20251001), -latest.
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


class PricingError(ConfigError):
    """The price table or an override is invalid; the message names the model and field."""


def _decimal_input(value: Any) -> Any:
    # bool is an int subclass, and `yes` in YAML is a bool: a price of True is a typo, not $1.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


USD = Annotated[
    Decimal,
    BeforeValidator(_decimal_input),
    Field(ge=0, allow_inf_nan=False, max_digits=24, decimal_places=12),
]
Tokens = Annotated[int, Field(gt=0, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """Prices of one model, USD per million tokens."""

    input: USD
    output: USD
    cached_input: USD
    cache_write: USD
    max_output_tokens: Tokens | None = None
    context_window: Tokens | None = None

    @model_validator(mode="before")
    @classmethod
    def _cache_defaults(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "input" in data:
            data = dict(data)
            for field in ("cached_input", "cache_write"):
                if data.get(field) is None:
                    data[field] = data["input"]
        return data

    @model_validator(mode="after")
    def _limits(self) -> "Price":
        if self.max_output_tokens and self.context_window and self.max_output_tokens > self.context_window:
            raise ValueError("max_output_tokens exceeds context_window")
        return self


def _optional(field: FieldInfo) -> tuple[Any, None]:
    annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    return Optional[annotation], None  # noqa: UP045 - built at run time from a type object


# A partial Price, the shape of one entry under ``pricing.models`` in a config: Price's fields,
# each with its own checks, all optional. Derived, so the two never list different fields.
PriceOverride = create_model("PriceOverride", __base__=_Strict, __doc__="A partial :class:`Price`.",
                             **{name: _optional(field) for name, field in Price.model_fields.items()})


class PricingOverrides(_Strict):
    """Config overrides and extensions of the shipped table (same shape as pricing.yaml)."""

    models: dict[str, PriceOverride] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)


def normalize_model(name: str) -> str:
    # Providers treat model ids case-sensitively but never ship two that differ only by case,
    # and clients do send "GPT-4o"; folding keeps such requests priced.
    return name.strip().lower()


def _normalized_keys(mapping: Mapping[str, Any], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{what} names must be non-empty strings, got {key!r}")
        norm = normalize_model(key)
        if norm in out:
            raise ValueError(f"{what} {key!r} is listed twice (names are case-insensitive)")
        out[norm] = value
    return out


class PriceTable(_Strict):
    models: dict[str, Price]
    aliases: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = dict(data)
            if isinstance(data.get("models"), Mapping):
                data["models"] = _normalized_keys(data["models"], "model")
            if isinstance(data.get("aliases"), Mapping):
                aliases = _normalized_keys(data["aliases"], "alias")
                data["aliases"] = {k: normalize_model(v) if isinstance(v, str) else v for k, v in aliases.items()}
        return data

    @model_validator(mode="after")
    def _aliases_resolve(self) -> "PriceTable":
        for alias, target in self.aliases.items():
            if alias in self.models:
                raise ValueError(f"alias {alias!r} shadows a priced model of the same name")
            if target not in self.models:
                raise ValueError(f"alias {alias!r} points to {target!r}, which has no price")
        return self

    def resolve(self, model: str) -> str | None:
        """The table's name for ``model`` (see pricing.yaml for the rule), or None if unpriced."""
        name = normalize_model(model)
        for candidate in (name, _SNAPSHOT_SUFFIX.sub("", name)):
            if candidate in self.models:
                return candidate
            target = self.aliases.get(candidate)
            if target is not None:
                return target
        return None

    def price(self, model: str) -> Price | None:
        """Prices of ``model``, or None when it is unpriced (callers must not treat that as free)."""
        name = self.resolve(model)
        return self.models[name] if name is not None else None


def _describe(exc: ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        message = message.removeprefix("Value error, ")
        loc = ".".join(str(part) for part in err["loc"])
        problems.append(f"{loc}: {message}" if loc else message)
    return f"{source}: " + "; ".join(problems)


def _read_table(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PricingError(f"{path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PricingError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PricingError(f"{path}: the price table must be a mapping with a `models` key")
    return data


def _merge(base: dict[str, Any], overrides: PricingOverrides) -> dict[str, Any]:
    models = {normalize_model(k): dict(v) for k, v in (base.get("models") or {}).items()}
    for name, override in _normalized_keys(overrides.models, "model").items():
        entry = models.setdefault(name, {})
        # Only fields the override spelled out count: an explicit null removes the shipped value
        # (so a cache price falls back to `input`), an absent field keeps it.
        for field in override.model_fields_set:
            value = getattr(override, field)
            if value is None:
                entry.pop(field, None)
            else:
                entry[field] = value
    # A model the config prices explicitly beats a shipped alias of the same name.
    aliases = {normalize_model(k): v for k, v in (base.get("aliases") or {}).items()}
    aliases = {k: v for k, v in aliases.items() if k not in models}
    aliases.update(_normalized_keys(overrides.aliases, "alias"))
    return {"models": models, "aliases": aliases}


def load_pricing(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | PricingOverrides | None = None,
) -> PriceTable:
    """The price table from ``path`` (default: the shipped file), with ``overrides`` merged in.

    Raises :class:`PricingError` naming the offending model and field.
    """
    source = Path(path) if path is not None else SHIPPED_PRICING
    base = _read_table(source)
    try:
        shipped = PriceTable.model_validate(base)
    except ValidationError as exc:
        raise PricingError(_describe(exc, str(source))) from exc
    if overrides is None:
        return shipped
    if isinstance(overrides, PricingOverrides):
        parsed = overrides
    else:
        try:
            parsed = PricingOverrides.model_validate(overrides)
        except ValidationError as exc:
            raise PricingError(_describe(exc, "pricing overrides")) from exc
    try:
        return PriceTable.model_validate(_merge(base, parsed))
    except ValidationError as exc:
        raise PricingError(_describe(exc, "pricing overrides")) from exc
    except ValueError as exc:
        raise PricingError(f"pricing overrides: {exc}") from exc
