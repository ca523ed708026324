"""Token usage and cost of each answer, read from what the provider sent (JSON or SSE), or
estimated from what it delivered when its report never came."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from edge_ext.cost.calc import CostResult, Rates, cost_at, cost_of
from edge_ext.cost.estimate import DeliveredText, estimated_usage
from edge_ext.cost.pricing import PriceTable
from edge_ext.frozen import slot_init
from edge_ext.sse import SSEParser
from edge_ext.usage import READERS, StreamUsage, Usage

log = logging.getLogger("edge_ext.cost")

_PRICES_KEPT = 1024
# A cache hit's saved cost is the same every time its entry is served: parsing the answer again
# for its usage was a third of a hit's processor work. Bounded by the bytes of the answers it
# keeps alive (the L1 holds the same objects as long as they are served from it).
_SAVED_KEPT_BYTES = 8 << 20
_SAVED_KEPT = 4096  # and by their number: many small answers cost more in their keys than bodies
_NOT_PRICED = object()


def _payload(data: str) -> dict | None:
    if not data.startswith("{"):
        return None  # OpenAI's [DONE], keep-alives
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


class Meter:
    """Reads usage from the upstream's bytes, in the upstream's API shape, at any chunking, and
    counts the text delivered so far for an answer that never reports its usage."""

    def __init__(self, upstream_api: str, stream: bool):
        self.api, self.stream = upstream_api, stream
        self._text = DeliveredText(upstream_api)
        if stream:
            self._parser = SSEParser()
            self._usage = StreamUsage(upstream_api)
            # Text events are not parsed once the framing of one is known: the delivered text is
            # only needed for an answer cut short, and a parse per event doubled a stream's cost.
            self._envelope: int | None = None
            self._unparsed = 0
        else:
            self._body = bytearray()

    def feed(self, chunk: bytes) -> None:
        if not self.stream:
            self._body += chunk
            return
        for event in self._parser.feed(chunk):
            data = event.data
            reports = '"usage"' in data
            if not reports and self._envelope is not None:
                self._unparsed += max(0, len(data) - self._envelope)
                continue
            payload = _payload(data)
            if payload is None:
                continue
            if reports:
                self._usage.observe_payload(payload)
            before = self._text.chars
            self._text.observe_event(payload)
            if self._envelope is None and self._text.chars > before:
                self._envelope = len(data) - (self._text.chars - before)

    def _json(self) -> dict | None:
        try:
            body = json.loads(self._body)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def usage(self) -> Usage | None:
        """The provider's own report of the whole answer, or None."""
        if self.stream:
            return self._usage.usage if self._usage.final else None
        body = self._json()
        return READERS[self.api].body(body) if body is not None else None

    def estimate(self, request_body: object) -> Usage:
        """What the answer so far is charged when its report never came (edge_ext.cost.estimate)."""
        if self.stream:
            return estimated_usage(self._usage.usage, request_body, self._text.chars + self._unparsed)
        body = self._json()
        if body is None:
            # Cut inside the JSON: its bytes, framing included, are all that can be counted.
            return estimated_usage(None, request_body, len(self._body))
        self._text.observe_body(body)
        return estimated_usage(READERS[self.api].body(body), request_body, self._text.chars)


@slot_init
@dataclass(frozen=True, slots=True)
class Charge:
    usage: Usage
    cost: CostResult
    # From an estimate (edge_ext.cost.estimate), not the provider's report.
    estimated: bool = False

    def headers(self) -> tuple[tuple[str, str], ...]:
        u = self.usage
        tokens = (f"input={u.input_tokens}, output={u.output_tokens}, cached_input={u.cached_input_tokens}, "
                  f"cache_write={u.cache_write_tokens}, reasoning={u.reasoning_tokens}")
        marked = (("x-edge-cost-estimated", "true"),) if self.estimated else ()
        return (("x-edge-cost-usd", self.usd_text()), ("x-edge-tokens", tokens), *marked)

    def usd_text(self) -> str:
        return format(self.cost.usd, "f") if self.cost.priced else "unpriced"

    def metadata(self) -> tuple[tuple[str, str], ...]:
        u = self.usage
        marked = (("cost_estimated", "true"),) if self.estimated else ()
        return (("tokens_in", str(u.input_tokens + u.cached_input_tokens + u.cache_write_tokens)),
                ("tokens_out", str(u.output_tokens)), ("cost_usd", self.usd_text()), *marked)


class Accounting:
    def __init__(self, prices: PriceTable, on_charge: Callable[[str, str, Charge], None] = lambda p, m, c: None,
                 on_saved: Callable[[str, Decimal], None] = lambda m, usd: None,
                 on_charges: Callable[[Sequence[tuple[str, str, Charge]]], None] | None = None):
        self._prices = prices
        self._on_charge, self._on_saved = on_charge, on_saved
        self._on_charges = on_charges
        self._warned: set[str] = set()
        # Each upstream model's price, resolved once (normalising the name takes a regex), as
        # whole numbers (edge_ext.cost.calc.Rates): the names come from the config and the
        # processor's own metadata, a bounded set.
        self._rates_of: dict[str, Rates | None] = {}
        # (api, model, answer) -> its saved cost; a body's hash is kept by the bytes object, so
        # a hit on the same L1 entry is one lookup.
        self._saved_of: dict[tuple[str, str, bytes], Decimal | object] = {}
        self._saved_bytes = 0

    def _rates(self, model: str) -> Rates | None:
        try:
            return self._rates_of[model]
        except KeyError:
            if len(self._rates_of) >= _PRICES_KEPT:
                self._rates_of.clear()
            price = self._prices.price(model)
            rates = self._rates_of[model] = Rates(price) if price is not None else None
            return rates

    def charge(self, provider: str, upstream_model: str, usage: Usage, estimated: bool = False) -> Charge:
        charge = self.price(upstream_model, usage, estimated)
        self._on_charge(provider, upstream_model, charge)
        return charge

    def price(self, upstream_model: str, usage: Usage, estimated: bool = False) -> Charge:
        """``charge`` without its metrics: a batch of them is recorded by ``charged``."""
        rates = self._rates(upstream_model)
        result = CostResult(cost_at(usage, rates), True) if rates is not None else CostResult.unpriced()
        if rates is None and upstream_model not in self._warned:
            # Never silently zero: the metric counts every one, the log names the model once.
            self._warned.add(upstream_model)
            log.warning("model %s has no price; its requests are counted as unpriced", upstream_model)
        return Charge(usage, result, estimated)

    def charged(self, charges: Sequence[tuple[str, str, Charge]]) -> None:
        """The metrics of a batch of charges made by ``price``: (provider, upstream model, charge)."""
        if self._on_charges is not None:
            self._on_charges(charges)
        else:
            for provider, model, charge in charges:
                self._on_charge(provider, model, charge)

    def saved(self, api: str, model: str, body: bytes) -> None:
        """A cache hit: the provider was not called; what it would have cost is saved."""
        key = (api, model, body)
        usd = self._saved_of.get(key)
        if usd is None:
            usd = self._saved_cost(api, model, body)
            if self._saved_bytes + len(body) > _SAVED_KEPT_BYTES or len(self._saved_of) >= _SAVED_KEPT:
                self._saved_of.clear()
                self._saved_bytes = 0
            self._saved_of[key] = usd
            self._saved_bytes += len(body)
        if usd is not _NOT_PRICED:
            self._on_saved(model, usd)

    def _saved_cost(self, api: str, model: str, body: bytes) -> Decimal | object:
        try:
            usage = READERS[api].body(json.loads(body))
        except (ValueError, KeyError, TypeError):
            return _NOT_PRICED
        if usage is None:
            return _NOT_PRICED
        result = cost_of(usage, model, self._prices)
        return result.usd if result.priced else _NOT_PRICED


def with_embedding(charge: Charge | None, embedding: Charge | None) -> Charge | None:
    """What a request's budgets settle: its answer's charge plus the embedding call of its semantic
    lookup (edge_ext.policy.semantic); either may be missing (a semantic hit has no answer's)."""
    if embedding is None or charge is None:
        return charge or embedding
    a, b = charge.cost, embedding.cost
    cost = CostResult(a.usd + b.usd, True) if a.priced and b.priced else a if a.priced else b
    return Charge(charge.usage + embedding.usage, cost, charge.estimated)
