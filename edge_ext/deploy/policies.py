"""NetworkPolicies of the processor and its Redis: who may open ext_proc streams, scrape metrics,
and where the processor may connect."""

from __future__ import annotations

from typing import Any

from edge_ext.deploy.common import (
    CLIENT_LABEL, GATEWAY_SELECTOR, ISTIO_NS, PLAINTEXT_WARNING, PROCESSOR, REDIS, Deployment, labels, meta,
)


def metrics_ingress(dep: Deployment) -> list[dict[str, Any]]:
    """Metrics name tenants and key ids and carry their spend: only the configured scrapers
    (metrics.scrapers) reach the port. Namespaces are matched by name, a label only the API
    server sets; a pod label alone could be put on any pod by whoever may create one."""
    scrapers = dep.config.metrics.scrapers
    if not dep.metrics_port or not scrapers.namespaces:
        return []
    peer: dict[str, Any] = {"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(scrapers.namespaces)}]}}
    if scrapers.pod_labels:
        peer["podSelector"] = {"matchLabels": dict(scrapers.pod_labels)}
    return [{"from": [peer], "ports": [{"protocol": "TCP", "port": dep.metrics_port}]}]


def network_policies(dep: Deployment, istio: bool) -> list[tuple[str, dict[str, Any]]]:
    clients = processor_clients(dep, istio)
    ingress: list[dict[str, Any]] = [{"from": clients, "ports": [{"protocol": "TCP", "port": p} for p in dep.ports]}]
    ingress += metrics_ingress(dep)
    egress: list[dict[str, Any]] = []
    if dep.in_cluster_redis:
        egress.append({"to": [{"podSelector": {"matchLabels": labels("redis")}}], "ports": [{"protocol": "TCP", "port": 6379}]})
    external = {port for host, port in dep.redis_addresses if host != REDIS}
    r = dep.config.redis
    if r is not None and any(conn is not None and conn.sentinel is not None for conn in (r, r.cache)):
        external.add(6379)  # the primary the sentinels name: its port is not in the config
    if external:
        # An existing Redis: its address is not known to the policy, its ports are.
        egress.append({"ports": [{"protocol": "TCP", "port": port} for port in sorted(external)]})
    # DNS to any address: node-local DNS caches listen outside the kube-dns pods.
    egress.append({"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]})
    # Providers: a NetworkPolicy cannot name hosts, so 443 to any address.
    egress.append({"ports": [{"protocol": "TCP", "port": 443}]})
    if istio:
        who = f"The istio-egressgateway pods, and pods labelled {CLIENT_LABEL}=true in any namespace (sidecar mode),"
        how = ("Anyone may label a pod in a namespace of their own: for sidecars this policy only narrows who can\n"
               "connect, and the workers' mutual TLS is the authentication.")
    else:
        who = f"Only the Envoy edge's pods, in the {dep.namespace} namespace,"
        how = "The workers' mutual TLS authenticates them as well."
    if not dep.mtls:
        how = PLAINTEXT_WARNING
    docs = [(
        f"{who} may open ext_proc streams. Kubelet probes come from the node and are not subject to this policy.\n{how}",
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(PROCESSOR, "processor"),
         "spec": {"podSelector": {"matchLabels": labels("processor")}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": ingress, "egress": egress}},
    )]
    if dep.in_cluster_redis:
        docs.append(("Redis answers the processor only and opens no connection itself.",
                     {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(REDIS, "redis"),
                      "spec": {"podSelector": {"matchLabels": labels("redis")}, "policyTypes": ["Ingress", "Egress"],
                               "ingress": [{"from": [{"podSelector": {"matchLabels": labels("processor")}}],
                                            "ports": [{"protocol": "TCP", "port": 6379}]}]}}))
    return docs


def processor_clients(dep: Deployment, istio: bool) -> list[dict[str, Any]]:
    """Who may connect to the workers: pods by their labels AND their namespace by its name
    (kubernetes.io/metadata.name, set by the API server), not a label any pod anywhere can take.
    Istio's sidecar mode is the exception: its apps live in any namespace (see the policy's comment)."""

    def pods_in(namespace: str, pod_labels: dict[str, str]) -> dict[str, Any]:
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "podSelector": {"matchLabels": pod_labels}}

    if not istio:
        return [pods_in(dep.namespace, labels("envoy"))]
    return [pods_in(ISTIO_NS, GATEWAY_SELECTOR), {"namespaceSelector": {}, "podSelector": {"matchLabels": {CLIENT_LABEL: "true"}}}]
