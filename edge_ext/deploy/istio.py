"""Istio: edge-ext's ext_proc filter in application sidecars or in an egress gateway.

Targets Istio 1.22-1.24, whose proxies are Envoy 1.30-1.32. EnvoyFilter patches are raw Envoy
config: istiod drops a patch with a field its Envoy API does not know, so the filter here is the
standalone one minus the fields added after Envoy 1.30 (NEWER_THAN_ISTIO).

Routing stays Istio's: edge-ext names the provider in x-edge-cluster (provider_<name>), and a
VirtualService maps each value to the provider's ServiceEntry host, whose DestinationRule
originates TLS. A request no edge-ext route claims gets a 503 (fail closed): if the filter is
not applied on some proxy, nothing leaves with the caller's own credentials.

The proxies reach the processor outside Istio's own mTLS (Envoy-originated streams are not
captured): the processor cluster carries a client certificate from edge-ext's CA, a
ClusterIssuer (edge_ext.deploy.pki), mounted into the egress gateway or each app's istio-proxy.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from edge_ext.config.hosts import is_ip
from edge_ext.config.models import Config
from edge_ext.deploy import pki
from edge_ext.deploy.common import (
    CLIENT_LABEL, GATEWAY_SELECTOR, ISTIO_NS, ISTIO_VERSIONS, PROCESSOR, RENDERED, DeployError, Deployment, comment,
    dns_processor_cluster, documents, dump, ext_proc_filter, is_loopback, kustomization,
)
from edge_ext.deploy.k8s import base
from edge_ext.envoy_config.render import CA_BUNDLE, local_reply_mappers, processor_mtls, render

GATEWAY = "edge-ext-llm-egress"
GATEWAY_SERVICE = f"istio-egressgateway.{ISTIO_NS}.svc.cluster.local"
GATEWAY_PORT = 80
HCM = "envoy.filters.network.http_connection_manager"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
EXT_PROC = "envoy.filters.http.ext_proc"
# Fields of the standalone filter that Envoy 1.30 (Istio 1.22) lacks, and the release adding them.
NEWER_THAN_ISTIO = {"status_on_error": "Envoy 1.36"}
# The filter ships disabled and is enabled on the provider hosts' virtual hosts only, so the
# other traffic through the same listener never reaches the processor.
ENABLE = {EXT_PROC: {"@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute", "overrides": {}}}
HEADER = f"{RENDERED}\nTargets Istio {ISTIO_VERSIONS} (Envoy 1.30-1.32)."
NETWORKING = "networking.istio.io/v1"  # v1 since Istio 1.22; EnvoyFilter stays v1alpha3


@dataclass(frozen=True)
class Host:
    name: str
    mesh_port: int  # the port apps address (plain HTTP, so the proxy can see the request)
    target_port: int  # the provider's own port
    tls: bool

    @property
    def slug(self) -> str:
        return "edge-ext-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


def provider_hosts(config: Config) -> dict[str, Host]:
    """Provider name -> its mesh host. https providers are addressed on port 80 (TLS is originated)."""
    hosts: dict[str, Host] = {}
    claimed: dict[tuple[str, int], Host] = {}
    for p in config.providers:
        if is_loopback(p) or is_ip(p.host):
            raise DeployError(f"provider {p.name}: Istio routes external hosts by DNS name, and {p.host} "
                              "is an address (a loopback one would be the app's own pod); give it a hostname")
        host = Host(p.host, 80 if p.tls else p.port, p.port, p.tls)
        other = claimed.setdefault((host.name, host.mesh_port), host)
        if other != host:
            raise DeployError(f"provider {p.name}: {p.base_url} and another provider both need {host.name}:{host.mesh_port} in the mesh")
        hosts[p.name] = host
    return hosts


FAILOVER_ATTRIBUTES = ("xds.upstream_host_metadata", "upstream.request_attempt_count")


def istio_filter(config: Config) -> dict[str, Any]:
    f = ext_proc_filter(config)
    for key in NEWER_THAN_ISTIO:
        f["typed_config"].pop(key, None)
    # Not in Envoy 1.30's GrpcService.EnvoyGrpc: the streams carry Envoy's headers there.
    f["typed_config"]["grpc_service"]["envoy_grpc"].pop("skip_envoy_headers", None)
    # Who answered after how many attempts only matters with in-flight failover, which Istio's
    # routing does not do (the render pins routing.max_attempts to 1).
    typed = f["typed_config"]
    typed["response_attributes"] = [a for a in typed["response_attributes"] if a not in FAILOVER_ATTRIBUTES]
    return {"name": f["name"], "disabled": True, "typed_config": f["typed_config"]}


def scoped_local_replies(hosts: list[str]) -> dict[str, Any]:
    """The standalone edge's error bodies, limited to requests for the provider hosts."""
    names = "|".join(re.escape(h) for h in sorted(set(hosts)))
    only_ours = {"header_filter": {"header": {"name": ":authority", "string_match": {"safe_regex": {"regex": f"({names})(:[0-9]+)?"}}}}}
    mappers = copy.deepcopy(local_reply_mappers())
    for mapper in mappers:
        mapper["filter"]["and_filter"]["filters"].append(only_ours)
    return {"mappers": mappers}


def envoy_filter(config: Config, dep: Deployment, gateway: bool) -> dict[str, Any]:
    context = "GATEWAY" if gateway else "SIDECAR_OUTBOUND"
    hosts = provider_hosts(config)
    processor = dns_processor_cluster(config, f"{PROCESSOR}.{dep.namespace}.svc")
    if gateway and dep.mtls:
        # The gateway's client Secret is where istioctl's egress gateway mounts it, not at TLS_DIR.
        files = {"ca_file": "ca.crt", "client_cert_file": "tls.crt", "client_key_file": "tls.key"}
        mtls = config.processor.mtls.model_copy(update={k: f"{pki.GATEWAY_TLS_DIR}/{v}" for k, v in files.items()})
        processor["transport_socket"] = processor_mtls(mtls)
    buffer_limit = render(config)["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"]
    # Sidecars: only the listeners of the provider ports. Gateways: every listener (Istio binds the
    # gateway Service's target port, not the Gateway's port); the filter is off outside our vhosts.
    listeners = [{}] if gateway else [{"portNumber": port} for port in sorted({h.mesh_port for h in hosts.values()})]
    patches: list[dict[str, Any]] = [{"applyTo": "CLUSTER", "match": {"context": context}, "patch": {"operation": "ADD", "value": processor}}]
    for listener in listeners:
        patches += [
            {"applyTo": "HTTP_FILTER",
             "match": {"context": context, "listener": {**listener, "filterChain": {"filter": {"name": HCM, "subFilter": {"name": "envoy.filters.http.router"}}}}},
             "patch": {"operation": "INSERT_BEFORE", "value": istio_filter(config)}},
            {"applyTo": "NETWORK_FILTER",
             "match": {"context": context, "listener": {**listener, "filterChain": {"filter": {"name": HCM}}}},
             "patch": {"operation": "MERGE", "value": {"name": HCM, "typed_config": {
                 "@type": HCM_TYPE, "local_reply_config": scoped_local_replies([h.name for h in hosts.values()])}}}},
            # Envoy buffers the whole body for the processor: raise the 1 MiB default to the config's limit.
            {"applyTo": "LISTENER", "match": {"context": context, **({"listener": listener} if listener else {})},
             "patch": {"operation": "MERGE", "value": {"per_connection_buffer_limit_bytes": buffer_limit}}},
        ]
    for host in sorted(set(hosts.values()), key=lambda h: (h.name, h.mesh_port)):
        port = GATEWAY_PORT if gateway else host.mesh_port
        route_config: dict[str, Any] = {"vhost": {"name": f"{host.name}:{port}"}}
        if not gateway:
            route_config["portNumber"] = port
        patches.append({"applyTo": "VIRTUAL_HOST", "match": {"context": context, "routeConfiguration": route_config},
                        "patch": {"operation": "MERGE", "value": {"typed_per_filter_config": ENABLE}}})
    selector = {"labels": GATEWAY_SELECTOR} if gateway else {"labels": {CLIENT_LABEL: "true"}}
    name = "edge-ext-egress-gateway" if gateway else "edge-ext-sidecar"
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter", "metadata": {"name": name, "namespace": ISTIO_NS},
            "spec": {"workloadSelector": selector, "configPatches": patches}}


def provider_routes(config: Config, gateway: str | None) -> list[dict[str, Any]]:
    hosts = provider_hosts(config)
    routes = []
    for p in config.providers:
        match: dict[str, Any] = {"headers": {"x-edge-cluster": {"exact": p.cluster}}}
        if gateway:
            match["gateways"] = [gateway]
        routes.append({
            "name": p.cluster, "match": [match],
            "rewrite": {"authority": p.url.netloc},
            "route": [{"destination": {"host": hosts[p.name].name, "port": {"number": hosts[p.name].mesh_port}}}],
            "timeout": f"{p.timeout_s:g}s",
            # As on the standalone edge: a retried completion is billed twice; SDKs retry with backoff.
            "retries": {"attempts": 0},
            "headers": {"request": {"remove": ["x-edge-cluster"]},
                        "response": {"set": {"x-edge-provider": "%DYNAMIC_METADATA(edge_ext:provider)%"}}},
        })
    body = {"error": {"message": "edge-ext did not route this request: its ext_proc filter is not active on this proxy",
                      "type": "api_error", "param": None, "code": "edge_ext_not_applied"}}
    fail: dict[str, Any] = {"name": "edge-ext-fail-closed", "directResponse": {"status": 503, "body": {"string": json.dumps(body)}},
                            "headers": {"response": {"set": {"content-type": "application/json"}}}}
    if gateway:
        fail["match"] = [{"gateways": [gateway]}]
    return routes + [fail]


def virtual_service(name: str, config: Config, gateways: list[str] | None, http: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {"hosts": sorted({h.name for h in provider_hosts(config).values()}), "exportTo": ["*"]}
    if gateways:
        spec["gateways"] = gateways
    spec["http"] = http
    return {"apiVersion": NETWORKING, "kind": "VirtualService", "metadata": {"name": name, "namespace": ISTIO_NS}, "spec": spec}


def provider_entries(config: Config) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for host in sorted(set(provider_hosts(config).values()), key=lambda h: (h.name, h.mesh_port)):
        if ".svc." in f"{host.name}.":
            continue  # a Kubernetes Service: Istio knows it already, and a ServiceEntry would shadow it
        port: dict[str, Any] = {"number": host.mesh_port, "name": f"http-{host.mesh_port}", "protocol": "HTTP"}
        if host.tls:
            port["targetPort"] = host.target_port
        docs.append((f"{host.name}: apps send plain HTTP to port {host.mesh_port}" + (f"; the proxy originates TLS to {host.target_port}." if host.tls else "."),
                     {"apiVersion": NETWORKING, "kind": "ServiceEntry", "metadata": {"name": host.slug, "namespace": ISTIO_NS},
                      "spec": {"hosts": [host.name], "location": "MESH_EXTERNAL", "resolution": "DNS", "exportTo": ["*"], "ports": [port]}}))
        if host.tls:
            docs.append(("TLS origination with SNI and certificate checks, as the standalone edge's provider cluster does.",
                         {"apiVersion": NETWORKING, "kind": "DestinationRule", "metadata": {"name": host.slug, "namespace": ISTIO_NS},
                          "spec": {"host": host.name, "exportTo": ["*"], "trafficPolicy": {"tls": {
                              "mode": "SIMPLE", "sni": host.name, "subjectAltNames": [host.name], "caCertificates": CA_BUNDLE}}}}))
    return docs


def tls_files(dep: Deployment) -> dict[str, str]:
    """The CA (its own kustomization: a namespace transformer must not move it), the gateway's
    client certificate, and what each sidecar-mode application namespace needs."""
    mounted = f"mounted into istio-proxy at {pki.TLS_DIR}"
    files = {
        "pki/certificates.yaml": documents(HEADER + "\nNeeds cert-manager (cert-manager.io/v1).", pki.ca_objects(cluster=True)),
        "pki/kustomization.yaml": kustomization(
            "edge-ext's CA for the processor's mutual TLS, shared by both modes. No namespace here: the CA's\n"
            "Certificate must stay in cert-manager's cluster resource namespace.", resources=["certificates.yaml"]),
        "egress-gateway/certificate.yaml": documents(HEADER, [(
            f"The egress gateway's client certificate. istioctl's egress gateway mounts the Secret {pki.GATEWAY_SECRET} "
            f"(an optional volume) at {pki.GATEWAY_TLS_DIR}; mount it there yourself if you install the gateway otherwise.\n"
            "The gateway reads it when it starts: after the first issue and each renewal,\n"
            "  kubectl -n istio-system rollout restart deployment/istio-egressgateway",
            pki.client_certificate("edge-ext-egress-gateway", pki.GATEWAY_SECRET, cluster=True, namespace=ISTIO_NS))]),
        "sidecar/client-certificate.yaml": comment(
            "EXAMPLE for each application namespace, not part of the kustomization:\n"
            "  kubectl -n APP_NAMESPACE apply -f client-certificate.yaml\n"
            f"(or list it in the application's own kustomization). Its Secret is {mounted} by the "
            "annotations of app-pod-patch.yaml; without that volume the sidecar cannot load the processor cluster.")
        + dump(pki.client_certificate(pki.SIDECAR_VOLUME, pki.CLIENT_SECRET, cluster=True)),
        "sidecar/app-pod-patch.yaml": comment(
            "EXAMPLE: what an application's pod template needs in sidecar mode, as a strategic merge patch:\n"
            "  kubectl -n APP_NAMESPACE patch deployment APP --patch-file app-pod-patch.yaml\n"
            f"The label selects the EnvoyFilter; the annotations mount the namespace's {pki.CLIENT_SECRET} Secret "
            f"(client-certificate.yaml) into istio-proxy at {pki.TLS_DIR}. Sidecars read it when they start.")
        + dump(pki.sidecar_pod_patch(CLIENT_LABEL)),
    }
    if dep.app_namespaces:
        files["sidecar/client-certificates.yaml"] = documents(HEADER, [
            (f"Client certificate of the sidecars in {ns} ({mounted}, see app-pod-patch.yaml).",
             pki.client_certificate(pki.SIDECAR_VOLUME, pki.CLIENT_SECRET, cluster=True, namespace=ns))
            for ns in dep.app_namespaces])
    return files


def render_istio(dep: Deployment) -> dict[str, str]:
    config = dep.config
    files = {f"processor/{path}": text for path, text in base(dep, istio=True).items()}
    tls = ["../pki"] if dep.mtls else []
    if dep.mtls:
        files.update(tls_files(dep))
    files["providers/providers.yaml"] = documents(HEADER, provider_entries(config))
    files["providers/kustomization.yaml"] = kustomization("The provider hosts, shared by both modes.", resources=["providers.yaml"])
    files["sidecar/envoyfilter.yaml"] = documents(HEADER, [(
        f"Sidecars of pods labelled {CLIENT_LABEL}=true run ext_proc on requests to the provider hosts"
        + (f"; their istio-proxy must mount the namespace's client certificate at {pki.TLS_DIR} (app-pod-patch.yaml)." if dep.mtls else "."),
        envoy_filter(config, dep, gateway=False))])
    files["sidecar/virtualservice.yaml"] = documents(HEADER, [(
        "Routes on the provider edge-ext chose (x-edge-cluster); anything else is refused.",
        virtual_service("edge-ext-llm-providers", config, None, provider_routes(config, None)))])
    known = ["client-certificates.yaml"] if dep.mtls and dep.app_namespaces else []
    files["sidecar/kustomization.yaml"] = kustomization(
        "Sidecar mode: ext_proc in each labelled app's sidecar. Apply with processor/, not with egress-gateway/.",
        resources=[*tls, "../providers", "envoyfilter.yaml", "virtualservice.yaml", *known])
    gateway_ref = f"{ISTIO_NS}/{GATEWAY}"
    to_gateway = {"name": "to-egress-gateway", "match": [{"gateways": ["mesh"]}],
                  "route": [{"destination": {"host": GATEWAY_SERVICE, "port": {"number": GATEWAY_PORT}}}], "retries": {"attempts": 0}}
    gateway = {"apiVersion": NETWORKING, "kind": "Gateway", "metadata": {"name": GATEWAY, "namespace": ISTIO_NS},
               "spec": {"selector": GATEWAY_SELECTOR, "servers": [{"port": {"number": GATEWAY_PORT, "name": "http-llm", "protocol": "HTTP"},
                                                                   "hosts": sorted({h.name for h in provider_hosts(config).values()})}]}}
    files["egress-gateway/gateway.yaml"] = documents(HEADER, [
        ("The egress gateway accepts the provider hosts in plain HTTP from the mesh (mTLS between proxies).", gateway),
        ("Sidecars send provider traffic to the gateway; there, the provider edge-ext chose gets it.",
         virtual_service("edge-ext-llm-via-egress-gateway", config, ["mesh", gateway_ref], [to_gateway, *provider_routes(config, gateway_ref)])),
    ])
    files["egress-gateway/envoyfilter.yaml"] = documents(HEADER, [(
        "The istio-egressgateway pods run ext_proc for the whole cluster's LLM traffic"
        + (f", reaching the processor with the client certificate of certificate.yaml (at {pki.GATEWAY_TLS_DIR})." if dep.mtls else "."),
        envoy_filter(config, dep, gateway=True))])
    files["egress-gateway/kustomization.yaml"] = kustomization(
        "Egress-gateway mode: one ext_proc point for the cluster. Apply with processor/, not with sidecar/.",
        resources=[*tls, "../providers", "gateway.yaml", "envoyfilter.yaml", *(["certificate.yaml"] if dep.mtls else [])])
    return files
