"""The Envoy edge on Kubernetes and the overlays that run it: standalone, egress-gateway, linkerd.

The edge's bootstrap is `edge-ext envoy-config`'s, with one change: the processor cluster
resolves the processor's headless Service instead of local sockets, over mutual TLS with the
edge's client certificate (edge_ext.deploy.pki) unless rendered with plaintext.
"""

from __future__ import annotations

import hashlib
from typing import Any

from edge_ext.deploy import pki
from edge_ext.deploy.common import (
    CONFIG_HASH, ENVOY, IMAGE, PLAINTEXT_WARNING, PROCESSOR, RENDERED, Deployment, comment, dns_processor_cluster,
    documents, dump, is_loopback, kustomization, labels, meta,
)
from edge_ext.deploy.k8s import container_security, rolling_deployment
from edge_ext.envoy_config.render import PROCESSOR_CLUSTER, envoy_args, render

BOOTSTRAP_DIR = "/etc/envoy"
DRAIN_S = 30
CONCURRENCY = 2  # Envoy's default is the node's core count, whatever the pod's CPU limit.


# Inside the pod, loopback is the pod's own: only its containers reach Envoy's admin there, and
# the preStop hook needs it to drain.
POD_ADMIN = {"host": "127.0.0.1", "port": 9901}


def pod_config(dep: Deployment):
    c = dep.config
    admin = c.envoy.admin if c.envoy.admin.port is not None else c.envoy.admin.model_copy(update=POD_ADMIN)
    # The listener serves the pod IP whatever listen.host says (the processor ignores listen).
    return c.model_copy(update={"listen": c.listen.model_copy(update={"host": "0.0.0.0"}),
                                "envoy": c.envoy.model_copy(update={"admin": admin})})


def edge_bootstrap(dep: Deployment) -> dict[str, Any]:
    config = pod_config(dep)
    bootstrap = render(config)
    clusters = bootstrap["static_resources"]["clusters"]
    index = next(i for i, c in enumerate(clusters) if c["name"] == PROCESSOR_CLUSTER)
    # The short name resolves through the pod's search path: no namespace or cluster domain baked in.
    clusters[index] = dns_processor_cluster(config, PROCESSOR)
    return bootstrap


def bootstrap_text(dep: Deployment) -> str:
    return comment(f"Envoy bootstrap of the edge-ext edge. {RENDERED}") + dump(edge_bootstrap(dep))


def mock_containers(dep: Deployment) -> list[dict[str, Any]]:
    """The bundled mock provider for every loopback base_url, as `edge-ext up --with-mock` does."""
    seen = sorted({(p.host, p.port) for p in dep.config.providers if is_loopback(p)})
    return [{
        "name": f"mock-provider-{port}",
        "image": IMAGE,
        "args": ["mock-provider", "--host", "127.0.0.1" if host == "localhost" else host, "--port", str(port), "--name", f"mock-{port}"],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": container_security(),
    } for host, port in seen]


def edge_deployment(dep: Deployment, text: str, mock: bool) -> dict[str, Any]:
    c = pod_config(dep)
    concurrency = c.envoy.concurrency or CONCURRENCY
    admin = c.envoy.admin
    # Graceful drain: Envoy asks clients to reconnect (GOAWAY / connection: close) while the pod
    # leaves the Service; streams still open after the grace period are cut.
    drain = (f"import time, urllib.request as u; u.urlopen(u.Request('http://{admin.host}:{admin.port}/drain_listeners?graceful', "
             f"method='POST'), timeout=2); time.sleep({DRAIN_S + 5})") if admin.port else f"import time; time.sleep({DRAIN_S + 5})"
    envoy = {
        "name": "envoy",
        "image": IMAGE,
        "command": ["envoy"],
        "args": envoy_args(f"{BOOTSTRAP_DIR}/envoy.yaml", DRAIN_S, concurrency),
        "ports": [{"name": "http", "containerPort": c.listen.port}],
        # /health/live skips ext_proc: a processor outage answers 503 JSON (fail closed) instead of
        # emptying the Service, which would turn every request into a connection error.
        "readinessProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "initialDelaySeconds": 10, "periodSeconds": 10},
        "lifecycle": {"preStop": {"exec": {"command": ["python", "-c", drain]}}},
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": str(concurrency), "memory": "1Gi"}},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "bootstrap", "mountPath": BOOTSTRAP_DIR, "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes = [{"name": "bootstrap", "configMap": {"name": ENVOY}}, {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if dep.mtls:
        envoy["volumeMounts"].append(pki.tls_mount())
        volumes.append(pki.tls_volume(pki.CLIENT_SECRET))
    return rolling_deployment(ENVOY, "envoy", {CONFIG_HASH: hashlib.sha256(text.encode()).hexdigest()}, DRAIN_S + 20,
                              [envoy, *(mock_containers(dep) if mock else [])], volumes)


def edge_objects(dep: Deployment, mock: bool) -> list[tuple[str, dict[str, Any]]]:
    text = bootstrap_text(dep)
    mocked = " The mock-provider containers serve the config's loopback base_urls (demo only)." if mock and mock_containers(dep) else ""
    tls = (f"over mutual TLS with the client certificate above ({pki.CLIENT_SECRET}, mounted at {pki.TLS_DIR})" if dep.mtls
           else f"IN PLAINTEXT.\n{PLAINTEXT_WARNING}")
    certificate = [("The edge's client certificate: the processor's workers answer no one else.",
                    pki.client_certificate(ENVOY, pki.CLIENT_SECRET, cluster=False))] if dep.mtls else []
    return [
        *certificate,
        ("The bootstrap of `edge-ext envoy-config`, with the processor cluster resolving the processor's "
         f"headless Service (STRICT_DNS, one endpoint per worker port), {tls}.",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(ENVOY, "envoy"), "data": {"envoy.yaml": text}}),
        ("Envoy from the edge-ext image (the version the bootstrap is validated with). The processor's NetworkPolicy "
         f"admits these pods by their labels and namespace.{mocked}", edge_deployment(dep, text, mock)),
        ("Apps use http://edge-ext-envoy.NAMESPACE/v1 as their OpenAI base URL.",
         {"apiVersion": "v1", "kind": "Service", "metadata": meta(ENVOY, "envoy"),
          "spec": {"selector": labels("envoy"), "ports": [{"name": "http", "port": 80, "targetPort": "http", "appProtocol": "http"}]}}),
        ("",
         {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(ENVOY, "envoy"),
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ENVOY}, "minReplicas": 2, "maxReplicas": 10,
                   "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}}),
        ("", {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(ENVOY, "envoy"),
              "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels("envoy")}}}),
    ]


def standalone(dep: Deployment, mock: bool) -> dict[str, str]:
    return {
        "envoy.yaml": documents(RENDERED, edge_objects(dep, mock)),
        "kustomization.yaml": kustomization(
            "The Envoy edge plus the processor base: apps in the cluster call the edge's Service. The edge must run in\n"
            "the processor's namespace: the processor's NetworkPolicy admits Envoy pods of that namespace only.",
            namespace=dep.namespace, resources=["../../base", "envoy.yaml"]),
    }


def egress_gateway(dep: Deployment) -> dict[str, str]:
    c = dep.config
    provider_ports = sorted({p.port for p in c.providers if not is_loopback(p)})
    policy = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(ENVOY, "envoy"),
        "spec": {
            "podSelector": {"matchLabels": labels("envoy")}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": c.listen.port}]}],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": labels("processor")}}], "ports": [{"protocol": "TCP", "port": p} for p in dep.ports]},
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                *([{"ports": [{"protocol": "TCP", "port": p} for p in provider_ports]}] if provider_ports else []),
            ],
        },
    }
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": ENVOY}, "spec": {"minReplicas": 3}}
    apps = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "llm-egress-via-edge-ext"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
            {"to": [{"namespaceSelector": {}}]},
            {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        ]},
    }
    return {
        "network-policy.yaml": documents(RENDERED, [(
            "Every pod in the cluster may call the gateway; the gateway may call only the processor, DNS and\n"
            "the providers' ports (NetworkPolicy cannot name hosts).", policy)]),
        "hpa.yaml": comment("The whole cluster's LLM egress goes through these pods: keep three.") + dump(hpa),
        "app-egress-policy.yaml": comment(
            "EXAMPLE for each application namespace, not part of the kustomization:\n"
            "  kubectl -n APP_NAMESPACE apply -f app-egress-policy.yaml\n"
            "Pods there may reach any pod in the cluster (the edge-ext gateway included) and DNS, but no\n"
            "address outside the cluster: providers are reachable only through the gateway. Pods that need\n"
            "other external services (or the API server, which is not a pod) need their own allow rules.") + dump(apps),
        "kustomization.yaml": kustomization(
            "The Envoy edge as the cluster's egress point for LLM traffic: open to every namespace,\n"
            "restricted in what it may reach, and sized for the whole cluster.",
            namespace=dep.namespace, resources=["../standalone", "network-policy.yaml"], patches=[{"path": "hpa.yaml"}]),
    }


def linkerd(dep: Deployment) -> dict[str, str]:
    inject = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": ENVOY}, "spec": {"template": {"metadata": {"annotations": {
        "linkerd.io/inject": "enabled",
        # The proxy carries Envoy's own outbound traffic (processor, providers): keep it up for
        # as long as Envoy drains in its preStop hook.
        "config.alpha.linkerd.io/proxy-wait-before-exit-seconds": str(DRAIN_S + 10),
    }}}}}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": dep.namespace, "labels": {
        "pod-security.kubernetes.io/enforce": "privileged",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }}}
    return {
        "linkerd.yaml": comment(
            "Linkerd's proxy is not Envoy and has no ext_proc: the Envoy edge joins the mesh as an ordinary\n"
            "workload, and meshed apps send LLM traffic to its Service (mTLS and per-request balancing by Linkerd).")
        + dump(inject),
        "namespace.yaml": comment(
            "linkerd-init needs NET_ADMIN and NET_RAW, which the restricted Pod Security Standard forbids. With\n"
            "the Linkerd CNI plugin there is no init container: drop this patch to keep `restricted` enforced.")
        + dump(namespace),
        "kustomization.yaml": kustomization(
            "The standalone edge as a meshed Linkerd workload (Linkerd 2.14 or later).",
            resources=["../standalone"], patches=[{"path": "linkerd.yaml"}, {"path": "namespace.yaml"}]),
    }


def overlays(dep: Deployment, mock: bool) -> dict[str, str]:
    files: dict[str, str] = {}
    for name, rendered in (("standalone", standalone(dep, mock)), ("egress-gateway", egress_gateway(dep)), ("linkerd", linkerd(dep))):
        files.update({f"overlays/{name}/{path}": text for path, text in rendered.items()})
    return files

