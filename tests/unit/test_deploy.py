"""Deployment artefacts (edge_ext.deploy): committed examples, Kubernetes schemas, Envoy configs.

Kubernetes objects are checked offline with kubernetes-validate against the 1.30 schemas
(strict: unknown fields fail); cert-manager's CRDs have no schema there, so `check_cert_manager`
checks their required fields, and the tests check that every issuer reference and mounted
certificate Secret resolves. Overlays are built by `kustomize_build` below, a deliberately
small stand-in for `kustomize build`: resources (files and directories), `namespace`, `images`
and `patches: [{path}]` merged strategically by kind and name; any other kustomization key fails
the test rather than being ignored. Istio's CRDs have no schema here: their structure is asserted,
and the Envoy config inside every EnvoyFilter patch is assembled into a bootstrap and checked by
`envoy --mode validate` (and, in one e2e test, by real traffic).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from edge_ext.config import load_config, parse_config
from edge_ext.deploy import DeployError, examples, pki, render_target
from edge_ext.deploy.common import CLIENT_LABEL, CONFIG_PATH, EXT_PROC_SERVICE, IMAGE, KEYS_SECRET, POD_STATE_DIR, PROCESSOR, TLS_DIR
from edge_ext.deploy.istio import NEWER_THAN_ISTIO, provider_hosts
from edge_ext.envoy_config.render import PROCESSOR_CLUSTER, provider_cluster, render_yaml
from tests.support import free_port, http, start_mock, stop, wait_until

ROOT = Path(__file__).resolve().parents[2]
K8S_SCHEMA = "1.30.0"  # kubernetes-validate ships this version's schemas: the exact target
REGENERATE = "run: .venv/bin/python -m edge_ext.deploy  (then review and commit k8s/ and istio/)"
# Fields of ExternalProcessor present in Envoy 1.30's API (Istio 1.22's proxy), read from the
# API as of April 2024. A template field outside this set must be checked against Envoy 1.30 and
# added here, or listed in edge_ext.deploy.istio.NEWER_THAN_ISTIO so Istio's filter drops it.
ENVOY_1_30_EXT_PROC = {
    "allow_mode_override", "disable_clear_route_cache", "disable_immediate_response", "failure_mode_allow", "filter_metadata",
    "forward_rules", "grpc_service", "max_message_timeout", "message_timeout", "metadata_options", "mutation_rules",
    "observability_mode", "processing_mode", "request_attributes", "response_attributes", "stat_prefix",
}
OVERLAYS = ["k8s/base", "k8s/overlays/standalone", "k8s/overlays/egress-gateway", "k8s/overlays/linkerd", "istio/processor"]
EXAMPLE = ROOT / "envoy" / "example-config.yaml"
ISTIO_EXAMPLE = ROOT / "istio" / "example-config.yaml"


# --- a minimal kustomize -------------------------------------------------------------------
MERGE_BY_NAME = {"containers", "initContainers", "volumes", "env", "volumeMounts"}  # Kubernetes' merge keys we patch
CLUSTER_SCOPED = {"Namespace"}


def strategic_merge(target: dict, patch: dict) -> None:
    """Maps merge key by key; the lists above merge items by name; other lists are replaced, as
    strategic merge does for lists without a patch merge key."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            strategic_merge(target[key], value)
        elif isinstance(value, list) and key in MERGE_BY_NAME and isinstance(target.get(key), list):
            existing = {item["name"]: item for item in target[key]}
            for item in value:
                strategic_merge(existing[item["name"]], item) if item["name"] in existing else target[key].append(item)
        else:
            target[key] = copy.deepcopy(value)


def pod_containers(obj: dict) -> list[dict]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def kustomize_build(directory: Path) -> list[dict]:
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(k) - {"apiVersion", "kind", "namespace", "resources", "patches", "images"}
    assert not unsupported, f"{directory}: kustomize_build does not implement {sorted(unsupported)}"
    objects: list[dict] = []
    for entry in k.get("resources", []):
        path = directory / entry
        objects += kustomize_build(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in k.get("patches", []):
        assert set(patch) == {"path"}, patch
        doc = yaml.safe_load((directory / patch["path"]).read_text())
        targets = [o for o in objects if o["kind"] == doc["kind"] and o["metadata"]["name"] == doc["metadata"]["name"]]
        assert len(targets) == 1, f"{patch['path']} must patch exactly one object, matched {len(targets)}"
        strategic_merge(targets[0], doc)
    for obj in objects:
        if "namespace" in k and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = k["namespace"]
        for image in k.get("images", []):
            for c in pod_containers(obj):
                name, _, tag = c["image"].rpartition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    ids = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(ids) == len(set(ids)), f"duplicate objects in {directory}: {ids}"
    return objects


def find(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def tls_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A processor and a client directory laid out as cert-manager writes a Secret, from one CA."""
    import trustme

    ca = trustme.CA()
    dirs = []
    for name, cert in (("server", ca.issue_cert(PROCESSOR, f"{PROCESSOR}.edge-ext.svc")), ("client", ca.issue_cert("edge-ext-envoy"))):
        d = tmp_path / f"tls-{name}"
        d.mkdir()
        ca.cert_pem.write_to_path(str(d / "ca.crt"))
        cert.cert_chain_pems[0].write_to_path(str(d / "tls.crt"))
        cert.private_key_pem.write_to_path(str(d / "tls.key"))
        dirs.append(d)
    return dirs[0], dirs[1]


def with_client_certs(text: str, client: Path) -> str:
    """Envoy reads its certificate files even in validate mode: point the pod paths at real ones."""
    return text.replace(pki.GATEWAY_TLS_DIR, str(client)).replace(TLS_DIR, str(client))


def envoy_validate(tmp_path: Path, bootstrap: dict | str, name: str = "bootstrap.yaml") -> None:
    path = tmp_path / name
    text = bootstrap if isinstance(bootstrap, str) else yaml.safe_dump(bootstrap)
    path.write_text(with_client_certs(text, tls_dirs(tmp_path)[1]))
    envoy = str(Path(sys.executable).parent / "envoy") if (Path(sys.executable).parent / "envoy").exists() else shutil.which("envoy")
    out = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "error"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# --- committed examples ----------------------------------------------------------------------
def test_committed_examples_are_current():
    fresh = examples(ROOT)
    for path, text in fresh.items():
        assert path.exists() and path.read_text() == text, f"{path.relative_to(ROOT)} is stale; {REGENERATE}"
    rendered = {p for p in fresh}
    stale = [p for d in ("k8s", "istio") for p in (ROOT / d).rglob("*.yaml") if p not in rendered and p.name != "example-config.yaml"]
    assert not stale, f"files no longer rendered: {stale}; {REGENERATE}"


# --- Kubernetes ------------------------------------------------------------------------------
CERT_MANAGER_REQUIRED = {
    "Certificate": {"secretName", "issuerRef"},
    "Issuer": set(),
    "ClusterIssuer": set(),
}
ISSUER_TYPES = {"selfSigned", "ca", "acme", "vault", "venafi"}


def check_cert_manager(obj: dict) -> None:
    """What cert-manager's CRD schema would refuse: unknown kinds, missing fields, an issuer of no
    or several types, a Certificate without a subject, an issuerRef outside cert-manager.io."""
    assert obj["apiVersion"] == "cert-manager.io/v1" and obj["kind"] in CERT_MANAGER_REQUIRED, obj
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"} and obj["metadata"]["name"]
    spec = obj["spec"]
    assert CERT_MANAGER_REQUIRED[obj["kind"]] <= set(spec), obj["metadata"]["name"]
    if obj["kind"] == "Certificate":
        assert set(spec["issuerRef"]) <= {"name", "kind", "group"} and spec["issuerRef"]["group"] == "cert-manager.io"
        assert spec["issuerRef"]["kind"] in {"Issuer", "ClusterIssuer"}
        assert spec.get("commonName") or spec.get("dnsNames"), "a Certificate needs a subject"
        assert set(spec.get("usages", [])) <= {"digital signature", "key encipherment", "server auth", "client auth", "cert sign"}
        assert spec["privateKey"]["algorithm"] in {"RSA", "ECDSA", "Ed25519"}
    else:
        assert len(set(spec) & ISSUER_TYPES) == 1 and set(spec) <= ISSUER_TYPES, spec
        if "ca" in spec:
            assert set(spec["ca"]) == {"secretName"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_objects_validate_against_kubernetes_1_30(overlay):
    objects = kustomize_build(ROOT / overlay)
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            check_cert_manager(obj)
            continue
        try:
            kubernetes_validate.validate(obj, K8S_SCHEMA, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize("path", ["k8s/base/secret.example.yaml", "k8s/overlays/egress-gateway/app-egress-policy.yaml",
                                  "istio/processor/secret.example.yaml"])
def test_example_files_outside_kustomizations_validate(path):
    for obj in docs(ROOT / path):
        kubernetes_validate.validate(obj, K8S_SCHEMA, strict=True)
    kustomization = yaml.safe_load((ROOT / path).parent.joinpath("kustomization.yaml").read_text())
    assert path.rpartition("/")[2] not in kustomization["resources"]  # examples are never applied


def test_processor_matches_config():
    config = load_config(EXAMPLE)
    objects = kustomize_build(ROOT / "k8s/base")
    deploy = find(objects, "Deployment", PROCESSOR)
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = [p["containerPort"] for p in container["ports"] if p["name"].startswith("grpc-worker-")]
    assert ports == [50051 + i for i in range(config.processor.worker_count())]
    assert [p["port"] for p in find(objects, "Service", PROCESSOR)["spec"]["ports"] if p["name"].startswith("grpc")] == ports
    assert find(objects, "Service", PROCESSOR)["spec"]["clusterIP"] == "None"
    for probe in ("readinessProbe", "livenessProbe"):
        # Kubelet's gRPC probe has no TLS: the pod's own probe checks the workers over mutual TLS.
        assert container[probe]["exec"]["command"] == ["python", "-m", "edge_ext.deploy.probe", "--config", CONFIG_PATH]
    assert container["image"] == IMAGE and deploy["metadata"]["namespace"] == "edge-ext"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert deploy["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9464"
    # Keys are references to the Secret, never values.
    ref = {"name": KEYS_SECRET, "key": "OPENAI_API_KEY", "optional": False}
    assert container["env"] == [{"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": ref}}]
    assert not any(o["kind"] == "Secret" for o in objects)
    served = yaml.safe_load(find(objects, "ConfigMap", "edge-ext-config")["data"]["config.yaml"])
    assert served["processor"]["address"] == "0.0.0.0:50051" and served["redis"] == {"url": "redis://edge-ext-redis:6379/0"}
    # Its own private directory on the pod's emptyDir, and mutual TLS with the mounted server certificate.
    assert served["processor"]["state_dir"] == POD_STATE_DIR and POD_STATE_DIR.startswith("/tmp/")
    assert "allow_plaintext_tcp" not in served["processor"]
    assert served["processor"]["mtls"] == {"ca_file": f"{TLS_DIR}/ca.crt", "server_cert_file": f"{TLS_DIR}/tls.crt",
                                           "server_key_file": f"{TLS_DIR}/tls.key", "client_cert_file": f"{TLS_DIR}/tls.crt",
                                           "client_key_file": f"{TLS_DIR}/tls.key"}
    assert {"name": "tls", "mountPath": TLS_DIR, "readOnly": True} in container["volumeMounts"]
    assert {"name": "tls", "secret": {"secretName": pki.SERVER_SECRET, "defaultMode": 0o440}} in pod["volumes"]
    assert {o["kind"] for o in objects} >= {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Namespace"}


def selects(peer: dict, pod: dict, namespace: str) -> bool:
    """Whether a NetworkPolicy peer (namespaceSelector AND podSelector, matchLabels only) selects the pod."""
    ns_labels = {"kubernetes.io/metadata.name": namespace}  # all the API server guarantees a namespace has
    wanted_ns = peer["namespaceSelector"].get("matchLabels", {})
    wanted_pod = peer["podSelector"].get("matchLabels", {})
    return wanted_ns.items() <= ns_labels.items() and wanted_pod.items() <= pod["spec"]["template"]["metadata"]["labels"].items()


def test_network_policy_admits_only_the_edge_envoys_and_limits_egress():
    objects = kustomize_build(ROOT / "k8s/overlays/standalone")
    policy = find(objects, "NetworkPolicy", PROCESSOR)["spec"]
    workers = policy["ingress"][0]
    # A namespace by its API-server-set name AND the edge's pod labels: no pod elsewhere can label itself in.
    (peer,) = workers["from"]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "edge-ext"}}
    edge = find(objects, "Deployment", "edge-ext-envoy")
    assert selects(peer, edge, edge["metadata"]["namespace"])
    assert not selects(peer, edge, "some-app") and not selects(peer, find(objects, "Deployment", "edge-ext-redis"), "edge-ext")
    assert CLIENT_LABEL not in edge["spec"]["template"]["metadata"]["labels"]
    assert [p["port"] for p in workers["ports"]] == [50051, 50052]
    egress = [(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]]
    assert sorted(egress) == [("TCP", 53), ("TCP", 443), ("TCP", 6379), ("UDP", 53)]
    assert policy["egress"][0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"


METRICS_PROVIDERS = 'providers: [{name: p, kind: openai, base_url: "https://api.openai.com", models: [m]}]\n'


@pytest.mark.parametrize("metrics, expected", [
    ("", [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["monitoring"]}]}}]),
    ("metrics: {scrapers: {namespaces: [obs, prom], pod_labels: {app.kubernetes.io/name: prometheus}}}\n",
     [{"namespaceSelector": {"matchExpressions": [
         {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["obs", "prom"]}]},
       "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]),
    ("metrics: {scrapers: {namespaces: []}}\n", None),
    ("metrics: {enabled: false}\n", None),
], ids=["default-monitoring-namespace", "configured-namespaces-and-pods", "no-scrapers", "metrics-off"])
@pytest.mark.parametrize("target, path", [("k8s", "base/network-policy.yaml"), ("istio", "processor/network-policy.yaml")])
def test_metrics_are_reachable_only_from_the_configured_scrapers(metrics, expected, target, path):
    # Metrics name tenants and key ids and carry their spend: never open to any source.
    text = metrics + METRICS_PROVIDERS
    policy = find(docs_of(render_target(parse_config(text), target, text)[path]), "NetworkPolicy", PROCESSOR)["spec"]
    rules = [rule for rule in policy["ingress"] if any(p["port"] == 9464 for p in rule["ports"])]
    assert all("from" in rule for rule in policy["ingress"])
    assert [rule["from"] for rule in rules] == ([expected] if expected else [])


def test_edge_bootstrap_shares_clusters_with_the_config_and_passes_envoy_validate(tmp_path):
    config = load_config(EXAMPLE)
    objects = kustomize_build(ROOT / "k8s/overlays/standalone")
    text = find(objects, "ConfigMap", "edge-ext-envoy")["data"]["envoy.yaml"]
    # STRICT_DNS names are not resolved in validate mode: the Service name need not exist here.
    envoy_validate(tmp_path, text)
    bootstrap = yaml.safe_load(text)
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    processor = clusters[PROCESSOR_CLUSTER]
    assert processor["type"] == "STRICT_DNS"
    # The client certificate of the edge's Secret, mounted where the bootstrap reads it.
    tls = processor["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["tls_certificates"] == [{"certificate_chain": {"filename": f"{TLS_DIR}/tls.crt"},
                                        "private_key": {"filename": f"{TLS_DIR}/tls.key"}}]
    assert tls["validation_context"]["trusted_ca"] == {"filename": f"{TLS_DIR}/ca.crt"}
    edge_pod = find(objects, "Deployment", "edge-ext-envoy")["spec"]["template"]["spec"]
    assert {"name": "tls", "mountPath": TLS_DIR, "readOnly": True} in edge_pod["containers"][0]["volumeMounts"]
    assert {"name": "tls", "secret": {"secretName": pki.CLIENT_SECRET, "defaultMode": 0o440}} in edge_pod["volumes"]
    assert [e["endpoint"]["address"]["socket_address"] for e in processor["load_assignment"]["endpoints"][0]["lb_endpoints"]] == [
        {"address": PROCESSOR, "port_value": 50051}, {"address": PROCESSOR, "port_value": 50052}]
    for p in config.providers:
        assert clusters[p.cluster] == provider_cluster(p)
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert any(r.get("route", {}).get("cluster_header") == "x-edge-cluster" for r in hcm["route_config"]["virtual_hosts"][0]["routes"])
    assert bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] == "0.0.0.0"
    edge = find(objects, "Deployment", "edge-ext-envoy")["spec"]["template"]
    # The example's provider is the loopback mock: it runs beside Envoy, as in `edge-ext up --with-mock`.
    assert [c["args"][:5] for c in edge["spec"]["containers"][1:]] == [["mock-provider", "--host", "127.0.0.1", "--port", "18080"]]


def test_overlays_apply_their_patches():
    linkerd = kustomize_build(ROOT / "k8s/overlays/linkerd")
    assert find(linkerd, "Deployment", "edge-ext-envoy")["spec"]["template"]["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
    assert "linkerd.io/inject" not in find(linkerd, "Deployment", PROCESSOR)["spec"]["template"]["metadata"]["annotations"]
    assert find(linkerd, "Namespace", "edge-ext")["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "restricted"
    gateway = kustomize_build(ROOT / "k8s/overlays/egress-gateway")
    assert find(gateway, "HorizontalPodAutoscaler", "edge-ext-envoy")["spec"]["minReplicas"] == 3
    egress = find(gateway, "NetworkPolicy", "edge-ext-envoy")["spec"]["egress"]
    assert egress[0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "processor"


def test_adapted_and_verbatim_config_text():
    text = ISTIO_EXAMPLE.read_text()
    files = render_target(parse_config(text), "k8s", text)
    served = find(docs_of(files["base/processor.yaml"]), "ConfigMap", "edge-ext-config")["data"]["config.yaml"]
    assert served == text  # already fit for pods: shipped as written, comments included
    adapted = render_target(load_config(EXAMPLE), "k8s", EXAMPLE.read_text())
    served = find(docs_of(adapted["base/processor.yaml"]), "ConfigMap", "edge-ext-config")["data"]["config.yaml"]
    assert served.startswith("# edge-ext config adapted") and "unix:/run/edge-ext -> 0.0.0.0:50051" in served
    assert f"processor.state_dir unset -> {POD_STATE_DIR}" in served and "processor.mtls -> " in served
    edge = find(docs_of(adapted["overlays/standalone/envoy.yaml"]), "Deployment", "edge-ext-envoy")
    assert [c["name"] for c in pod_containers(edge)] == ["envoy"]  # no mock unless asked for


@pytest.mark.parametrize("fast_path", [True, False])
def test_istio_renders_switch_the_2_message_path_off(fast_path):
    """The mesh's proxies get the ext_proc filter only, without the access log that brings the
    outcomes of 2-message requests back: the processor they talk to must read every answer."""
    data = yaml.safe_load(ISTIO_EXAMPLE.read_text())
    data["accounting"] = {"fast_path": fast_path}
    text = yaml.safe_dump(data)
    files = render_target(parse_config(text), "istio", text)
    served = find(docs_of(files["processor/processor.yaml"]), "ConfigMap", "edge-ext-config")["data"]["config.yaml"]
    assert parse_config(served).accounting.fast_path is False
    assert ("accounting.fast_path true -> false" in served) is fast_path
    # The Envoy edge has the outcome channel and keeps the 2-message path.
    k8s = render_target(parse_config(text), "k8s", text)
    edge_config = find(docs_of(k8s["base/processor.yaml"]), "ConfigMap", "edge-ext-config")["data"]["config.yaml"]
    assert parse_config(edge_config).accounting.fast_path is fast_path


def test_renders_do_not_depend_on_who_renders_them(tmp_path, monkeypatch):
    """The loader gives a config file without a state directory one under the home of whoever
    loads it; a pod gets its own instead, so every machine and user renders the same files."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["processor"] = {"workers": 2}
    path = tmp_path / "edge-ext.yaml"
    path.write_text(yaml.safe_dump(data))
    renders = []
    for home in ("alice", "bob"):
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / home))
        assert load_config(path).processor.state_dir.startswith(str(tmp_path / home))
        renders.append(render_target(load_config(path), "k8s", path.read_text()))
    assert renders[0] == renders[1]
    assert not any(str(tmp_path) in text for text in renders[0].values())
    served = find(docs_of(renders[0]["base/processor.yaml"]), "ConfigMap", "edge-ext-config")["data"]["config.yaml"]
    assert yaml.safe_load(served)["processor"]["state_dir"] == POD_STATE_DIR


def test_plaintext_processor_is_an_explicit_loud_choice():
    text = EXAMPLE.read_text()
    files = render_target(load_config(EXAMPLE), "k8s", text, plaintext_processor=True)
    served = yaml.safe_load(find(docs_of(files["base/processor.yaml"]), "ConfigMap", "edge-ext-config")["data"]["config.yaml"])
    assert served["processor"]["allow_plaintext_tcp"] is True and "mtls" not in served["processor"]
    assert "base/certificates.yaml" not in files and "certificates.yaml" not in files["base/kustomization.yaml"]
    for path in ("base/processor.yaml", "base/network-policy.yaml", "overlays/standalone/envoy.yaml"):
        assert "WARNING: rendered with --plaintext-processor" in files[path].replace("\n# ", " "), path
    (container,) = find(docs_of(files["base/processor.yaml"]), "Deployment", PROCESSOR)["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["grpc"] == {"port": 50051, "service": EXT_PROC_SERVICE}
    bootstrap = yaml.safe_load(find(docs_of(files["overlays/standalone/envoy.yaml"]), "ConfigMap", "edge-ext-envoy")["data"]["envoy.yaml"])
    assert "transport_socket" not in next(c for c in bootstrap["static_resources"]["clusters"] if c["name"] == PROCESSOR_CLUSTER)
    istio = render_target(load_config(ISTIO_EXAMPLE), "istio", ISTIO_EXAMPLE.read_text(), plaintext_processor=True)
    assert not any(path.startswith("pki/") or "certificate" in path for path in istio)


def docs_of(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def issued(objects: list[dict]) -> dict[tuple[str, str], dict]:
    """(namespace, secretName) -> the Certificate writing that Secret."""
    return {(o["metadata"].get("namespace", ""), o["spec"]["secretName"]): o for o in objects if o["kind"] == "Certificate"}


@pytest.mark.parametrize("directories", [["k8s/overlays/standalone"], ["k8s/overlays/egress-gateway"], ["k8s/overlays/linkerd"],
                                         ["istio/processor", "istio/sidecar"], ["istio/processor", "istio/egress-gateway"]],
                         ids=["k8s-standalone", "k8s-egress-gateway", "k8s-linkerd", "istio-sidecar", "istio-egress-gateway"])
def test_every_certificate_chains_to_the_processor_ca_and_every_mounted_secret_is_issued(directories):
    objects = [o for d in directories for o in kustomize_build(ROOT / d)]
    certificates = issued(objects)
    issuers = {(o["kind"], o["metadata"].get("namespace", "") if o["kind"] == "Issuer" else ""): o
               for o in objects if o["kind"] in ("Issuer", "ClusterIssuer") and o["metadata"]["name"] == pki.CA}
    (ca_issuer,) = issuers.values()
    ca_namespace = pki.CLUSTER_RESOURCE_NAMESPACE if ca_issuer["kind"] == "ClusterIssuer" else ca_issuer["metadata"]["namespace"]
    ca = certificates[(ca_namespace, ca_issuer["spec"]["ca"]["secretName"])]
    assert ca["spec"]["isCA"] is True and ca["spec"]["privateKey"]["rotationPolicy"] == "Never"
    for cert in certificates.values():
        ref = cert["spec"]["issuerRef"]
        if cert is ca:
            continue
        assert ref["name"] == pki.CA, cert["metadata"]
        if ref["kind"] == "Issuer":  # a namespaced issuer serves its own namespace only
            assert ("Issuer", cert["metadata"]["namespace"]) in issuers
        else:
            assert ("ClusterIssuer", "") in issuers
    # Every Secret a pod mounts for mutual TLS is one a Certificate writes, in the pod's namespace.
    for obj in objects:
        for volume in obj.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []):
            if volume["name"] == "tls":
                cert = certificates[(obj["metadata"]["namespace"], volume["secret"]["secretName"])]
                wanted = "server auth" if obj["metadata"]["name"] == PROCESSOR else "client auth"
                assert wanted in cert["spec"]["usages"], obj["metadata"]["name"]
    server = certificates[("edge-ext", pki.SERVER_SECRET)]["spec"]
    config = yaml.safe_load(find(objects, "ConfigMap", "edge-ext-config")["data"]["config.yaml"])
    assert config["processor"]["mtls"].get("server_name", PROCESSOR) in server["dnsNames"]
    assert f"{PROCESSOR}.edge-ext.svc" in server["dnsNames"]  # the name Istio's processor cluster resolves


def test_key_files_external_redis_and_targets():
    text = """\
providers:
  - {name: local, kind: openai_compatible, base_url: https://llm.internal, api_key_file: /run/keys/local, models: [m]}
processor: {address: "0.0.0.0:6000", workers: 1, allow_plaintext_tcp: true}
metrics: {enabled: false}
redis: {url: "redis://redis.shared:6380/2"}
"""
    config = parse_config(text)
    files = render_target(config, "k8s", text)
    # Plaintext said in the config is not a reason to render it: the pods get mutual TLS unless the render says otherwise.
    served = find(docs_of(files["base/processor.yaml"]), "ConfigMap", "edge-ext-config")["data"]["config.yaml"]
    assert "processor.allow_plaintext_tcp true -> false" in served and yaml.safe_load(served)["processor"]["mtls"]
    assert "base/redis.yaml" not in files and "redis.yaml" not in files["base/kustomization.yaml"]
    processor = find(docs_of(files["base/processor.yaml"]), "Deployment", PROCESSOR)
    (container,) = processor["spec"]["template"]["spec"]["containers"]
    assert {"name": "provider-keys", "mountPath": "/run/keys/local", "subPath": "local.key", "readOnly": True} in container["volumeMounts"]
    assert "env" not in container and [p["containerPort"] for p in container["ports"]] == [6000]
    policy = find(docs_of(files["base/network-policy.yaml"]), "NetworkPolicy", PROCESSOR)["spec"]
    assert {"ports": [{"protocol": "TCP", "port": 6380}]} in policy["egress"]
    assert render_target(config, "envoy", text) == {"envoy.yaml": render_yaml(config)}
    with pytest.raises(DeployError, match="unknown target"):
        render_target(config, "nomad", text)
    with pytest.raises(DeployError, match="hostname"):
        render_target(load_config(EXAMPLE), "istio", EXAMPLE.read_text())


def test_an_ha_redis_gets_its_credentials_and_ports():
    text = """\
providers:
  - {name: oa, kind: openai, base_url: https://api.openai.com, api_key_env: OPENAI_API_KEY, models: [m]}
redis:
  sentinel: {master: edge, nodes: ["sentinel-0.redis:26379", "sentinel-1.redis:26379"]}
  password_env: REDIS_PASSWORD
  tls: {ca_file: /etc/redis-tls/ca.crt}
  cache:
    cluster: {nodes: ["cache-0.redis:7000"]}
    password_file: /etc/redis-cache/password
    tls: {ca_file: /etc/redis-tls/ca.crt}
"""
    files = render_target(parse_config(text), "k8s", text)
    assert "base/redis.yaml" not in files
    processor = find(docs_of(files["base/processor.yaml"]), "Deployment", PROCESSOR)
    (container,) = processor["spec"]["template"]["spec"]["containers"]
    # The password comes from the Secret, like provider keys; files are mounted from it.
    assert {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": KEYS_SECRET, "key": "REDIS_PASSWORD", "optional": False}}} in container["env"]
    mounts = {m["mountPath"]: m["subPath"] for m in container["volumeMounts"] if m["name"] == "provider-keys"}
    assert mounts == {"/etc/redis-cache/password": "redis.cache.password", "/etc/redis-tls/ca.crt": "redis.ca.crt"}
    secret = docs_of(files["base/secret.example.yaml"])[0]["stringData"]
    assert set(secret) == {"OPENAI_API_KEY", "REDIS_PASSWORD", "redis.cache.password", "redis.ca.crt"}
    policy = find(docs_of(files["base/network-policy.yaml"]), "NetworkPolicy", PROCESSOR)["spec"]
    # The sentinels' and the cluster's ports, and the primary's the sentinels name.
    assert {"ports": [{"protocol": "TCP", "port": p} for p in (6379, 7000, 26379)]} in policy["egress"]


def test_a_config_the_target_cannot_take_is_a_clear_cli_error(tmp_path, capsys):
    from edge_ext.cli import main
    from edge_ext.errors import ConfigError

    assert issubclass(DeployError, ConfigError)
    assert main(["render", str(EXAMPLE), "--target", "istio", "-o", str(tmp_path / "out")]) == 2
    assert "edge-ext: cannot render istio: " in capsys.readouterr().err and not (tmp_path / "out").exists()


# --- Istio -----------------------------------------------------------------------------------
REQUIRED = {
    ("networking.istio.io/v1alpha3", "EnvoyFilter"): {"configPatches", "workloadSelector"},
    ("networking.istio.io/v1", "ServiceEntry"): {"hosts", "ports", "location", "resolution"},
    ("networking.istio.io/v1", "DestinationRule"): {"host", "trafficPolicy"},
    ("networking.istio.io/v1", "VirtualService"): {"hosts", "http"},
    ("networking.istio.io/v1", "Gateway"): {"selector", "servers"},
}
OPERATIONS = {"CLUSTER": "ADD", "HTTP_FILTER": "INSERT_BEFORE", "NETWORK_FILTER": "MERGE", "LISTENER": "MERGE", "VIRTUAL_HOST": "MERGE"}


def istio_objects(mode: str) -> list[dict]:
    objects = kustomize_build(ROOT / "istio" / mode)
    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            check_cert_manager(obj)
            # The CA's Secret where a ClusterIssuer reads it; everything else beside the proxies.
            expected = {"ClusterIssuer": None, "Certificate": pki.CLUSTER_RESOURCE_NAMESPACE if obj["spec"].get("isCA") else "istio-system"}
            assert obj["metadata"].get("namespace") == expected[obj["kind"]], obj["metadata"]
            continue
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}, obj
        assert REQUIRED[(obj["apiVersion"], obj["kind"])] <= set(obj["spec"]), obj["metadata"]["name"]
        assert obj["metadata"]["namespace"] == "istio-system"
    return objects


@pytest.mark.parametrize("mode", ["sidecar", "egress-gateway"])
def test_istio_resources_are_consistent_with_the_config(mode):
    config = load_config(ISTIO_EXAMPLE)
    objects = istio_objects(mode)
    hosts = {h.name: h for h in provider_hosts(config).values()}
    entries = {o["spec"]["hosts"][0]: o["spec"] for o in objects if o["kind"] == "ServiceEntry"}
    assert set(entries) == set(hosts) == {"api.openai.com", "api.anthropic.com"}
    for host, spec in entries.items():
        assert spec["ports"] == [{"number": 80, "name": "http-80", "protocol": "HTTP", "targetPort": 443}]
        rule = next(o["spec"] for o in objects if o["kind"] == "DestinationRule" and o["spec"]["host"] == host)
        assert rule["trafficPolicy"]["tls"]["mode"] == "SIMPLE" and rule["trafficPolicy"]["tls"]["sni"] == host
    (vs,) = [o["spec"] for o in objects if o["kind"] == "VirtualService"]
    routed = [r for r in vs["http"] if "route" in r and any("headers" in m for m in r.get("match", []))]
    assert {r["match"][0]["headers"]["x-edge-cluster"]["exact"] for r in routed} == {p.cluster for p in config.providers}
    for r in routed:
        dest = r["route"][0]["destination"]
        assert dest["host"] in entries and dest["port"]["number"] == entries[dest["host"]]["ports"][0]["number"]
    assert vs["http"][-1]["directResponse"]["status"] == 503  # nothing unrouted leaves the mesh
    # Istio routes on one provider cluster per request: no in-flight failover there.
    processor_config = yaml.safe_load(next(o for o in kustomize_build(ROOT / "istio" / "processor")
                                           if o["kind"] == "ConfigMap")["data"]["config.yaml"])
    assert processor_config["routing"]["max_attempts"] == 1
    (ef,) = [o for o in objects if o["kind"] == "EnvoyFilter"]
    context = "GATEWAY" if mode == "egress-gateway" else "SIDECAR_OUTBOUND"
    for patch in ef["spec"]["configPatches"]:
        assert patch["match"]["context"] == context and OPERATIONS[patch["applyTo"]] == patch["patch"]["operation"]
    vhosts = {p["match"]["routeConfiguration"]["vhost"]["name"] for p in ef["spec"]["configPatches"] if p["applyTo"] == "VIRTUAL_HOST"}
    assert vhosts == {f"{h}:80" for h in hosts}
    (cluster,) = [p["patch"]["value"] for p in ef["spec"]["configPatches"] if p["applyTo"] == "CLUSTER"]
    processor_service = find(kustomize_build(ROOT / "istio/processor"), "Service", PROCESSOR)
    assert [e["endpoint"]["address"]["socket_address"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]] == [
        {"address": f"{PROCESSOR}.{processor_service['metadata']['namespace']}.svc", "port_value": p["port"]}
        for p in processor_service["spec"]["ports"] if p["name"].startswith("grpc")]
    # The proxy's client certificate, where this mode mounts it: a gateway's Secret from certificate.yaml,
    # a sidecar's from its namespace's Certificate through app-pod-patch.yaml.
    tls = cluster["transport_socket"]["typed_config"]
    directory = pki.GATEWAY_TLS_DIR if mode == "egress-gateway" else TLS_DIR
    assert tls["common_tls_context"]["tls_certificates"] == [{"certificate_chain": {"filename": f"{directory}/tls.crt"},
                                                               "private_key": {"filename": f"{directory}/tls.key"}}]
    assert tls["common_tls_context"]["validation_context"]["trusted_ca"] == {"filename": f"{directory}/ca.crt"}
    assert tls["sni"] == PROCESSOR
    if mode == "egress-gateway":
        (cert,) = [o for o in objects if o["kind"] == "Certificate" and o["metadata"]["namespace"] == "istio-system"]
        assert cert["spec"]["secretName"] == pki.GATEWAY_SECRET and "client auth" in cert["spec"]["usages"]
    else:
        patch = docs(ROOT / "istio/sidecar/app-pod-patch.yaml")[0]["spec"]["template"]["metadata"]
        (cert,) = docs(ROOT / "istio/sidecar/client-certificate.yaml")
        (volume,) = json.loads(patch["annotations"]["sidecar.istio.io/userVolume"])
        (mount,) = json.loads(patch["annotations"]["sidecar.istio.io/userVolumeMount"])
        assert volume["secret"]["secretName"] == cert["spec"]["secretName"] and "namespace" not in cert["metadata"]
        assert mount == {"name": volume["name"], "mountPath": directory, "readOnly": True}
        assert patch["labels"] == ef["spec"]["workloadSelector"]["labels"]
        check_cert_manager(cert)
    (ext_proc,) = [p["patch"]["value"] for p in ef["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER"]
    assert ext_proc["disabled"] is True and ext_proc["typed_config"]["failure_mode_allow"] is False
    fields = set(ext_proc["typed_config"]) - {"@type"}
    assert fields <= ENVOY_1_30_EXT_PROC, f"not in Envoy 1.30 (Istio 1.22): {fields - ENVOY_1_30_EXT_PROC}"
    assert not fields & set(NEWER_THAN_ISTIO)
    # EnvoyGrpc as of Envoy 1.30: the standalone render's skip_envoy_headers is dropped.
    assert set(ext_proc["typed_config"]["grpc_service"]["envoy_grpc"]) <= {"cluster_name", "authority"}


def istio_bootstrap(mode: str, processor: tuple[str, list[int]] | None = None, upstream: int | None = None, port: int = 10000) -> dict:
    """What the EnvoyFilter patches add, assembled into one bootstrap, with the VirtualService
    translated as istiod would (routes, header matches, authority rewrite, direct response)."""
    objects = istio_objects(mode)
    (ef,) = [o for o in objects if o["kind"] == "EnvoyFilter"]
    (vs,) = [o["spec"] for o in objects if o["kind"] == "VirtualService"]
    patches = {}
    for p in ef["spec"]["configPatches"]:
        patches.setdefault(p["applyTo"], []).append(p)
    cluster = copy.deepcopy(patches["CLUSTER"][0]["patch"]["value"])
    if processor:
        host, ports = processor
        cluster["type"] = "STATIC"
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": p}}}} for p in ports]
    gateway = next((g for g in vs.get("gateways", []) if g != "mesh"), None)
    routes, upstreams = [], {}
    for r in vs["http"]:
        match = (r.get("match") or [{}])[0]
        if gateway and gateway not in match.get("gateways", [gateway]):
            continue  # the sidecar half of the egress-gateway VirtualService
        route = {"name": r["name"], "match": {"prefix": "/", "headers": [
            {"name": k, "string_match": v} for k, v in match.get("headers", {}).items()]}}
        headers = r.get("headers", {})
        route["request_headers_to_remove"] = headers.get("request", {}).get("remove", [])
        route["response_headers_to_add"] = [{"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                                            for k, v in headers.get("response", {}).get("set", {}).items()]
        if "directResponse" in r:
            route["direct_response"] = {"status": r["directResponse"]["status"], "body": {"inline_string": r["directResponse"]["body"]["string"]}}
        else:
            dest = r["route"][0]["destination"]
            name = f"outbound|{dest['port']['number']}||{dest['host']}"
            upstreams[name] = upstream or dest["port"]["number"]
            route["route"] = {"cluster": name, "host_rewrite_literal": r["rewrite"]["authority"], "timeout": r["timeout"]}
        routes.append(route)
    vhosts = []
    for p in patches["VIRTUAL_HOST"]:
        name = p["match"]["routeConfiguration"]["vhost"]["name"]
        vhosts.append({"name": name, "domains": [name.rpartition(":")[0]], "routes": routes, **p["patch"]["value"]})
    vhosts.append({"name": "elsewhere", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]})
    hcm = {"@type": patches["NETWORK_FILTER"][0]["patch"]["value"]["typed_config"]["@type"], "stat_prefix": "istio",
           "http_filters": [patches["HTTP_FILTER"][0]["patch"]["value"],
                            {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
           "route_config": {"name": "80", "virtual_hosts": vhosts},
           "local_reply_config": patches["NETWORK_FILTER"][0]["patch"]["value"]["typed_config"]["local_reply_config"]}
    listener = {"name": "0.0.0.0_80", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
                **patches["LISTENER"][0]["patch"]["value"]}
    # Stand-ins for Istio's outbound|PORT||HOST clusters (whose TLS the DestinationRule sets).
    stubs = [{"name": n, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": n, "endpoints": [
        {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}]}]}}
        for n, p in upstreams.items()]
    return {"static_resources": {"listeners": [listener], "clusters": [cluster, *stubs]}}


@pytest.mark.parametrize("mode", ["sidecar", "egress-gateway"])
def test_envoy_filter_patches_pass_envoy_validate(tmp_path, mode):
    envoy_validate(tmp_path, istio_bootstrap(mode))


def test_sidecar_client_certificates_for_known_app_namespaces():
    files = render_target(load_config(ISTIO_EXAMPLE), "istio", ISTIO_EXAMPLE.read_text(), app_namespaces=("team-a", "team-b"))
    certs = docs_of(files["sidecar/client-certificates.yaml"])
    assert [c["metadata"]["namespace"] for c in certs] == ["team-a", "team-b"]
    for cert in certs:
        check_cert_manager(cert)
        assert cert["spec"]["secretName"] == pki.CLIENT_SECRET and cert["spec"]["issuerRef"]["kind"] == "ClusterIssuer"
    assert "client-certificates.yaml" in yaml.safe_load(files["sidecar/kustomization.yaml"])["resources"]
    policy = find(docs_of(files["processor/network-policy.yaml"]), "NetworkPolicy", PROCESSOR)["spec"]["ingress"][0]["from"]
    gateway = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
               "podSelector": {"matchLabels": {"istio": "egressgateway"}}}
    assert policy == [gateway, {"namespaceSelector": {}, "podSelector": {"matchLabels": {CLIENT_LABEL: "true"}}}]
    assert "mutual TLS is the authentication" in files["processor/network-policy.yaml"].replace("\n# ", " ")


def processor_mtls(server: Path, client: Path) -> dict[str, str]:
    return {"ca_file": str(server / "ca.crt"), "server_cert_file": str(server / "tls.crt"), "server_key_file": str(server / "tls.key"),
            "client_cert_file": str(client / "tls.crt"), "client_key_file": str(client / "tls.key")}


def probe(config_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_ext.deploy.probe", "--config", str(config_path)],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.e2e
def test_istio_routing_follows_the_processor_through_real_envoy(tmp_path):
    """The sidecar patches and VirtualService, emulated: edge-ext picks the provider, Envoy re-routes on
    x-edge-cluster to that provider's host; other virtual hosts never reach the processor. Envoy reaches
    the worker over the rendered mutual TLS; a peer without a client certificate from the CA does not."""
    import grpc
    import trustme
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    mock = start_mock("istio-mock")
    worker_port, envoy_port = free_port(), free_port()
    server_tls, client_tls = tls_dirs(tmp_path)
    data = yaml.safe_load(ISTIO_EXAMPLE.read_text())
    # One worker on a free port, no metrics server, no Redis: only routing and the channel are under test.
    data.update(processor={"address": f"127.0.0.1:{worker_port}", "workers": 1, "state_dir": str(tmp_path / "state"),
                           "mtls": processor_mtls(server_tls, client_tls)}, metrics={"enabled": False})
    data.pop("cache", None)
    config_path = tmp_path / "edge-ext.yaml"
    config_path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "OPENAI_API_KEY": "sk-openai-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
    worker = subprocess.Popen([sys.executable, "-m", "edge_ext.worker", "--config", str(config_path)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bootstrap = yaml.safe_dump(istio_bootstrap("sidecar", ("127.0.0.1", [worker_port]), mock.port, envoy_port))
    (tmp_path / "envoy.yaml").write_text(with_client_certs(bootstrap, client_tls))  # the sidecar's mounted Secret
    envoy_bin = str(Path(sys.executable).parent / "envoy")
    envoy = subprocess.Popen([envoy_bin, "-c", str(tmp_path / "envoy.yaml"), "--disable-hot-restart", "-l", "error",
                              "--base-id", str(envoy_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{envoy_port}"
    try:
        wait_until(lambda: http("GET", f"{url}/anything", headers={"host": "example.org"}, timeout=1)[0] == 200, what="envoy up")

        def chat(model: str):
            body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
            return http("POST", f"{url}/v1/chat/completions", body, {"host": "api.openai.com", "content-type": "application/json",
                                                                      "authorization": "Bearer app-key"})
        wait_until(lambda: chat("gpt-4o-mini")[0] == 200, what="processor serving")
        mock.clear()
        status, headers, _ = chat("claude-3-5-haiku-latest")  # addressed to OpenAI, served by Anthropic
        assert status == 200 and headers.get("x-edge-provider") == "anthropic"
        (seen,) = mock.requests()
        sent = {k.lower(): v for k, v in seen["headers"].items()}
        assert seen["path"] == "/v1/messages" and sent["host"] == "api.anthropic.com"
        assert sent["x-api-key"] == "sk-ant-test" and "x-edge-cluster" not in sent and "authorization" not in sent
        # Not a provider host: the filter stays off, so the processor never sees it.
        assert http("POST", f"{url}/v1/chat/completions", b"{}", {"host": "example.org"})[0] == 200
        # Any other peer that reaches the port: in plaintext, over TLS without a client certificate, or
        # with a certificate from another CA, is refused before a single message.
        foreign = trustme.CA().issue_cert("edge-ext-envoy")
        ca = (server_tls / "ca.crt").read_bytes()
        for name, credentials in (
            ("no client certificate", grpc.ssl_channel_credentials(ca)),
            ("another CA's certificate", grpc.ssl_channel_credentials(ca, foreign.private_key_pem.bytes(), foreign.cert_chain_pems[0].bytes())),
        ):
            with grpc.secure_channel(f"127.0.0.1:{worker_port}", credentials, options=[("grpc.ssl_target_name_override", PROCESSOR)]) as ch:
                with pytest.raises(grpc.RpcError):
                    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
        with grpc.insecure_channel(f"127.0.0.1:{worker_port}") as ch:
            with pytest.raises(grpc.RpcError):
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
        # The pod's probe gets through with the CA's certificate, and only with it.
        assert probe(config_path).returncode == 0
        other = tmp_path / "tls-foreign"
        other.mkdir()
        foreign.cert_chain_pems[0].write_to_path(str(other / "tls.crt"))
        foreign.private_key_pem.write_to_path(str(other / "tls.key"))
        data["processor"]["mtls"] = processor_mtls(server_tls, other)
        (tmp_path / "foreign.yaml").write_text(yaml.safe_dump(data))
        refused = probe(tmp_path / "foreign.yaml")
        assert refused.returncode == 1 and "worker 0" in refused.stderr
    finally:
        stop(envoy)
        stop(worker)
        stop(mock.proc)


KUSTOMIZE = shutil.which("kubectl")


@pytest.mark.skipif(not KUSTOMIZE, reason="kubectl (built-in kustomize) not installed: kustomize_build is compared where it is")
@pytest.mark.parametrize("directory", [*OVERLAYS, "istio/sidecar", "istio/egress-gateway"])
def test_kustomize_build_agrees_with_real_kustomize(directory):
    out = subprocess.run([KUSTOMIZE, "kustomize", str(ROOT / directory)], capture_output=True, text=True, timeout=60, check=True)
    key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    real = sorted((d for d in yaml.safe_load_all(out.stdout) if d), key=key)
    assert real == sorted(kustomize_build(ROOT / directory), key=key)
