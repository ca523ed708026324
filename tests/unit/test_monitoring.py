"""The Grafana dashboard and Prometheus rules in monitoring/, checked offline: every query parses
as PromQL, and every metric and label it names is one edge-ext exports (the worker families of
edge_ext.metrics and the gauges the supervisor adds at scrape time). `promtool check rules`
runs too when Prometheus's promtool is installed (Debian: apt-get install prometheus)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import promql_parser
import pytest
import yaml

from edge_ext.budget_metrics import BudgetCollector
from edge_ext.config import parse_config
from edge_ext.metric_values import Histogram
from edge_ext.metrics import WorkerMetrics
from edge_ext.shared_metrics import SharedStateCollector
from tests.support import ROOT

RULES = ROOT / "monitoring" / "edge-ext-rules.yaml"
DASHBOARD = ROOT / "monitoring" / "edge-ext-dashboard.json"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, set[str]]:
    """Series name -> its label names, as the supervisor's /metrics serves them."""
    series: dict[str, set[str]] = {}
    for family in WorkerMetrics().families():
        labels = set(family.labelnames)
        if isinstance(family, Histogram):
            series[family.name + "_bucket"] = labels | {"le"}
            series[family.name + "_sum"] = series[family.name + "_count"] = labels
        else:
            series[family.name + "_total"] = labels
    state = tmp_path_factory.mktemp("state")
    config = parse_config(f"""
processor: {{address: "unix:{state}"}}
providers: [{{name: p, kind: openai, base_url: "http://127.0.0.1:1", models: [m]}}]
budgets: {{limits: [{{scope: tenant, id: t, period: daily, limit_usd: 1}}]}}
""")
    for family in [*SharedStateCollector(config).collect(), *BudgetCollector(config).collect()]:
        series[family.name] = set(family._labelnames)
    return series


def _concrete(expr: str) -> str:
    """A Grafana query with its variables replaced by values Prometheus would see."""
    expr = re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def used(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression refers to."""
    names, labels = set(), set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
            labels.update(m.name for m in node.matchers.matchers)
        modifier = getattr(node, "modifier", None)
        if isinstance(node, promql_parser.AggregateExpr) and modifier is not None:
            labels.update(modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and modifier is not None and modifier.matching is not None:
            labels.update(modifier.matching.labels)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names, labels


def check_against_exports(expr: str, exported: dict[str, set[str]]) -> None:
    names, labels = used(expr)
    unknown = names - set(exported)
    assert not unknown, f"{expr}: not exported by edge-ext: {sorted(unknown)}"
    known_labels = set().union(*(exported[n] for n in names))
    assert labels <= known_labels, f"{expr}: labels {sorted(labels - known_labels)} are on none of {sorted(names)}"


def rules():
    return [r for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]]


def dashboard_queries():
    board = json.loads(DASHBOARD.read_text())
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            metric, label = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"]).groups()
            yield f"variable {variable['name']}", f"count by ({label}) ({metric})"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_each_alert_parses_and_uses_only_exported_metrics_and_labels(rule, exported):
    check_against_exports(rule["expr"], exported)
    assert rule["labels"]["severity"] in ("info", "warning", "critical")
    assert rule["annotations"]["summary"]


def test_the_rules_cover_what_operators_page_on():
    alerts = {r["alert"] for r in rules()}
    assert {"EdgeExtBreakerOpen", "EdgeExtBudgetNearLimit", "EdgeExtErrorRatio", "EdgeExtProcessorErrors"} <= alerts


@pytest.mark.parametrize("title, expr", [pytest.param(t, e, id=f"{t}-{i}") for i, (t, e) in enumerate(dashboard_queries())])
def test_each_dashboard_query_parses_and_uses_only_exported_metrics_and_labels(title, expr, exported):
    check_against_exports(_concrete(expr), exported)


def test_the_dashboard_is_importable_grafana_json():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "edge-ext" and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]


def test_a_metric_edge_ext_does_not_export_is_caught(exported):
    with pytest.raises(AssertionError, match="not exported"):
        check_against_exports("rate(edge_ext_requests[5m])", exported)  # a counter is served as ..._total
    with pytest.raises(AssertionError, match="labels"):
        check_against_exports("sum by (tenant) (rate(edge_ext_requests_total[5m]))", exported)
    with pytest.raises(ValueError):
        used("sum(rate(edge_ext_requests_total[5m])")


def test_promtool_accepts_the_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool not found (apt-get install prometheus): the rules were checked by the PromQL parser only"
        print(f"\n!!! SKIPPING: {reason} !!!\n")
        pytest.skip(reason)
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
