"""Mutual TLS between Envoy and the processor, with certificates from cert-manager.

A worker answers an ext_proc stream with provider credentials, so in a cluster it accepts only
peers holding a client certificate from a CA of its own (``processor.mtls``). cert-manager makes
that CA (a self-signed issuer signs it), keeps a CA issuer, and issues the processor's server
certificate and one client certificate per Envoy: the edge, the Istio egress gateway, or each
application namespace whose sidecars run the filter. Each lands in a Secret as ``ca.crt``,
``tls.crt`` and ``tls.key``, and each pod mounts its own at TLS_DIR, where the config points.

Kubernetes: everything lives in the edge's namespace with namespaced issuers, so only who may
create Certificates there can obtain a client certificate. Istio: the gateway's and the
sidecars' certificates live in other namespaces, so the CA issuer is a ClusterIssuer, whose CA
Secret cert-manager reads from its cluster resource namespace (``cert-manager`` by default).

Workers and Envoy read the files when they start (nothing watches them): a renewed certificate
is used from the next pod restart. Leaf certificates last a year and are renewed 90 days ahead,
so any restart within those 90 days (a rollout, a node drain) picks the new one up in time.
"""

from __future__ import annotations

import json
from typing import Any

from edge_ext.deploy.common import PROCESSOR, TLS_DIR, Deployment, labels

API = "cert-manager.io/v1"
CLUSTER_RESOURCE_NAMESPACE = "cert-manager"
ROOT_ISSUER = "edge-ext-selfsigned"
CA = "edge-ext-processor-ca"  # the CA's Certificate, Secret and issuer
SERVER_SECRET = "edge-ext-processor-tls"
CLIENT_SECRET = "edge-ext-processor-client-tls"
# istioctl's egress gateway mounts this Secret (an optional volume) at this path in istio-proxy.
GATEWAY_SECRET = "istio-egressgateway-certs"
GATEWAY_TLS_DIR = "/etc/istio/egressgateway-certs"
# A user volume of the istio-proxy container in sidecar mode (Istio's injection annotations).
SIDECAR_VOLUME = "edge-ext-processor-client"

LEAF = {"duration": "8760h", "renewBefore": "2160h",
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}}


def issuer_ref(cluster: bool) -> dict[str, str]:
    return {"name": CA, "kind": "ClusterIssuer" if cluster else "Issuer", "group": "cert-manager.io"}


def _meta(name: str, namespace: str | None) -> dict[str, Any]:
    return {"name": name, **({"namespace": namespace} if namespace else {}), "labels": labels("pki")}


def ca_objects(cluster: bool) -> list[tuple[str, dict[str, Any]]]:
    """Self-signed root issuer -> CA certificate -> CA issuer (cluster-scoped when ``cluster``)."""
    kind = "ClusterIssuer" if cluster else "Issuer"
    ca_namespace = CLUSTER_RESOURCE_NAMESPACE if cluster else None
    ca = {"apiVersion": API, "kind": "Certificate", "metadata": _meta(CA, ca_namespace), "spec": {
        "isCA": True, "commonName": "edge-ext processor CA", "secretName": CA,
        "duration": "87600h", "renewBefore": "8760h",
        # A renewed CA keeps its key: certificates it signed earlier still verify against it.
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Never"},
        "issuerRef": {"name": ROOT_ISSUER, "kind": kind, "group": "cert-manager.io"}}}
    where = (f"in {CLUSTER_RESOURCE_NAMESPACE}, the namespace where a ClusterIssuer finds its Secret "
             "(cert-manager's --cluster-resource-namespace)") if cluster else "in the edge's namespace"
    return [
        ("Signs the CA below, nothing else.",
         {"apiVersion": API, "kind": kind, "metadata": _meta(ROOT_ISSUER, None), "spec": {"selfSigned": {}}}),
        (f"The CA that the processor and Envoy trust, and only for each other; its Secret lives {where}.", ca),
        (("Issues the processor's certificate and every client certificate. Anyone who may create a Certificate\n"
          "naming this ClusterIssuer, in any namespace, can obtain a client certificate: restrict that with\n"
          "RBAC or cert-manager's approver-policy.") if cluster else
         "Issues the processor's and the edge's certificates; only Certificates in this namespace can use it.",
         {"apiVersion": API, "kind": kind, "metadata": _meta(CA, None), "spec": {"ca": {"secretName": CA}}}),
    ]


def server_certificate(dep: Deployment, cluster: bool) -> dict[str, Any]:
    name = dep.config.processor.mtls.server_name if dep.mtls else PROCESSOR
    service = f"{PROCESSOR}.{dep.namespace}"
    dns = list(dict.fromkeys([name, PROCESSOR, service, f"{service}.svc", f"{service}.svc.cluster.local"]))
    return {"apiVersion": API, "kind": "Certificate", "metadata": _meta(PROCESSOR, None), "spec": {
        "secretName": SERVER_SECRET, "issuerRef": issuer_ref(cluster), "commonName": name, "dnsNames": dns, **LEAF,
        # client auth: the pod's probe checks its own workers over the same mutual TLS as Envoy.
        "usages": ["digital signature", "server auth", "client auth"]}}


def client_certificate(name: str, secret: str, cluster: bool, namespace: str | None = None) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Certificate", "metadata": _meta(name, namespace), "spec": {
        "secretName": secret, "issuerRef": issuer_ref(cluster), "commonName": name, **LEAF,
        "usages": ["digital signature", "client auth"]}}


def tls_volume(secret: str) -> dict[str, Any]:
    # 0440 with the pod's fsGroup: readable by the service user, not by others.
    return {"name": "tls", "secret": {"secretName": secret, "defaultMode": 0o440}}


def tls_mount() -> dict[str, Any]:
    return {"name": "tls", "mountPath": TLS_DIR, "readOnly": True}


def sidecar_pod_patch(label: str) -> dict[str, Any]:
    """What an application's pod template needs in sidecar mode: the label selecting the
    EnvoyFilter, and its namespace's client Secret mounted into istio-proxy at TLS_DIR."""
    volume = [{"name": SIDECAR_VOLUME, "secret": {"secretName": CLIENT_SECRET}}]
    mount = [{"name": SIDECAR_VOLUME, "mountPath": TLS_DIR, "readOnly": True}]
    return {"spec": {"template": {"metadata": {
        "labels": {label: "true"},
        "annotations": {"sidecar.istio.io/userVolume": json.dumps(volume, separators=(",", ":")),
                        "sidecar.istio.io/userVolumeMount": json.dumps(mount, separators=(",", ":"))}}}}}
