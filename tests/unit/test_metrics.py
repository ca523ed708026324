import asyncio
from decimal import Decimal

from prometheus_client import CollectorRegistry

from edge_ext.budget_metrics import BudgetCollector
from edge_ext.config import parse_config
from edge_ext.cost.budget import period_key
from edge_ext.cost.ledgers import DiskLedger
from edge_ext.cost.ledger_api import Hold
from edge_ext.metrics import WorkerMetrics
from edge_ext.shared_metrics import SharedStateCollector


def test_at_least_twenty_metric_families_with_bounded_labels(tmp_path):
    registry = CollectorRegistry()
    config = parse_config(f"""
processor: {{address: "unix:{tmp_path}"}}
providers: [{{name: p, kind: openai, base_url: "http://127.0.0.1:1", models: [m]}}]
""")
    registry.register(SharedStateCollector(config))
    worker = WorkerMetrics().families()
    families = {f.name for f in worker} | {m.name for m in registry.collect()}
    assert len(families) >= 20, sorted(families)
    assert {"gen_ai_client_token_usage", "gen_ai_server_request_duration_seconds", "gen_ai_server_time_to_first_token_seconds"} <= families
    # No label may carry an unbounded value (request ids, raw keys).
    labels = {label for f in worker for label in f.labelnames} | {
        label for m in registry.collect() for s in m.samples for label in s.labels}
    assert not labels & {"request_id", "key", "api_key", "authorization"}


def test_tracing_is_off_by_default_and_builds_an_otlp_pipeline_when_configured():
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer

    from edge_ext.config.models import Telemetry
    from edge_ext.telemetry import build_tracer

    assert build_tracer(Telemetry()) is None
    try:
        # No span is started: nothing listens on 4317, and an export attempt at exit would
        # only print a connection error after the test run.
        assert build_tracer(Telemetry(otlp_endpoint="http://127.0.0.1:4317")) is not None
    finally:
        GrpcAioInstrumentorServer().uninstrument()


async def test_budget_gauges_read_the_shared_ledger_at_scrape_time(tmp_path):
    config = parse_config(f"""
processor: {{address: "unix:{tmp_path}"}}
providers: [{{name: p, kind: openai, base_url: "http://127.0.0.1:1", models: [m]}}]
budgets: {{local_dir: "{tmp_path}/ledger", limits: [{{scope: tenant, id: acme, period: total, limit_usd: 10}}]}}
""")
    spend = Hold("tenant:acme", period_key("total", 0), "charge", Decimal("2.5"), 600.0)
    await DiskLedger(f"{tmp_path}/ledger").settle(spend, Decimal("2.5"), estimated=False)
    registry = CollectorRegistry()
    registry.register(BudgetCollector(config))
    labels = {"scope": "tenant", "id": "acme", "period": "total"}
    # The scrape runs in the metrics server's thread, outside any event loop.
    limit, spent = await asyncio.to_thread(
        lambda: (registry.get_sample_value("edge_ext_budget_limit_usd", labels), registry.get_sample_value("edge_ext_budget_spent_usd", labels)))
    assert (limit, spent) == (10.0, 2.5)


def test_no_budget_gauges_without_budgets(tmp_path):
    config = parse_config(f"""
processor: {{address: "unix:{tmp_path}"}}
providers: [{{name: p, kind: openai, base_url: "http://127.0.0.1:1", models: [m]}}]
""")
    assert list(BudgetCollector(config).collect()) == []
