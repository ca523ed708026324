"""What a reload may change, and how `edge-ext up`'s Envoy reads its resources from files."""

import pytest
import yaml

from edge_ext.config import parse_config
from edge_ext.config.reloadable import restart_only_changes
from edge_ext.envoy_config.dynamic import CLUSTERS, LISTENERS, ROUTES, document, merged_clusters, split
from edge_ext.envoy_config.render import PROCESSOR_CLUSTER, render
from edge_ext.reload import version_of

BASE = """\
listen: {port: 10000}
processor: {address: "unix:/run/edge-test", workers: 2}
providers:
  - {name: a, kind: openai, base_url: "http://127.0.0.1:9001", models: [m]}
"""


def config(extra: str = ""):
    return parse_config(BASE + extra)


@pytest.mark.parametrize("extra, key", [
    ("", None),
    ("auth: {enabled: false}\n", None),
    ("routing: {strategy: weighted}\n", None),
    ("pricing: {aliases: {m: gpt-4o-mini}}\n", None),
    ("  - {name: b, kind: openai, base_url: 'http://127.0.0.1:9002', models: [n]}\n", None),
])
def test_policy_and_provider_changes_are_reloadable(extra, key):
    assert restart_only_changes(config(), config(extra)) == []


@pytest.mark.parametrize("text, key", [
    (BASE.replace("port: 10000", "port: 10001"), "listen.port"),
    (BASE.replace("workers: 2", "workers: 3"), "processor.workers"),
    (BASE.replace("/run/edge-test", "/run/edge-other"), "processor.address"),
    (BASE + "metrics: {port: 9999}\n", "metrics.port"),
    (BASE + "envoy: {concurrency: 2}\n", "envoy.concurrency"),
])
def test_keys_of_the_running_processes_need_a_restart(text, key):
    (problem,) = restart_only_changes(config(), parse_config(text))
    assert problem.startswith(f"{key}: changed from") and "needs a restart" in problem


def test_split_keeps_the_processor_cluster_in_the_bootstrap_and_moves_the_rest_to_files(tmp_path):
    boot, files = split(render(config()), tmp_path)
    assert [c["name"] for c in boot["static_resources"]["clusters"]] == [PROCESSOR_CLUSTER]
    assert "listeners" not in boot["static_resources"]
    assert boot["dynamic_resources"]["cds_config"]["path_config_source"]["path"] == str(tmp_path / CLUSTERS)
    assert boot["dynamic_resources"]["lds_config"]["path_config_source"]["watched_directory"] == {"path": str(tmp_path)}
    hcm = files[LISTENERS][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert "route_config" not in hcm and hcm["rds"]["route_config_name"] == files[ROUTES][0]["name"]
    assert "provider_a" in {c["name"] for c in files[CLUSTERS]}
    parsed = yaml.safe_load(document(CLUSTERS, files[CLUSTERS], "v1"))
    assert parsed["version_info"] == "v1"
    assert all(r["@type"].endswith("envoy.config.cluster.v3.Cluster") for r in parsed["resources"])


def test_clusters_a_reload_drops_stay_until_the_workers_switched():
    old = [{"name": "provider_a", "v": 1}, {"name": "provider_gone"}]
    new = [{"name": "provider_a", "v": 2}, {"name": "provider_b"}]
    assert merged_clusters(old, new) == [{"name": "provider_a", "v": 2}, {"name": "provider_b"}, {"name": "provider_gone"}]


def test_every_ext_proc_filter_retries_a_stream_no_worker_answered():
    bootstrap = render(config("  - {name: b, kind: openai, base_url: 'http://127.0.0.1:9002', models: [m]}\n"))
    text = yaml.safe_dump(bootstrap)
    assert text.count("connect-failure,refused-stream,reset,cancelled,unavailable") == 1 + text.count("SkipFilter")


def test_the_version_is_the_start_of_the_files_sha256():
    assert version_of(b"x") == "2d711642b726"
