"""The kustomize base: the processor (Deployment, headless Service, ConfigMap, HPA, PDB,
NetworkPolicy, its certificates) and a Redis for the shared L2 tier. Targets Kubernetes 1.30."""

from __future__ import annotations

from typing import Any

from edge_ext.config.redis import credentials
from edge_ext.deploy import pki
from edge_ext.deploy.common import (
    CONFIG_HASH, CONFIG_MAP, CONFIG_PATH, EXT_PROC_SERVICE, IMAGE, IMAGE_NAME, IMAGE_TAG, K8S_VERSION, KEYS_SECRET,
    PLAINTEXT_WARNING, PROCESSOR, REDIS, REDIS_IMAGE_NAME, REDIS_IMAGE_TAG, RENDERED, Deployment, comment, documents, dump,
    kustomization, labels, meta,
)
from edge_ext.deploy.policies import network_policies

RUN_AS = 10001  # the image's `edge` user
REDIS_UID = 999  # the redis user of the official image


def container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def pod_security(uid: int = RUN_AS) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}}


def spread(component: str) -> dict[str, Any]:
    # Preferred, not required: a one-node cluster still schedules every replica.
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": labels(component)}}}
    ]}}


def key_env(dep: Deployment) -> list[dict[str, Any]]:
    env, seen = [], set()
    for p in dep.config.providers:
        if p.api_key_env and p.api_key_env not in seen:
            seen.add(p.api_key_env)
            # optional: false: a missing Secret stalls the rollout (old pods keep serving) instead
            # of starting pods whose every request to this provider gets 503 provider_key_missing.
            env.append({"name": p.api_key_env, "valueFrom": {"secretKeyRef": {"name": KEYS_SECRET, "key": p.api_key_env, "optional": False}}})
    for secret, _ in credentials(dep.config.redis):
        if secret.password_env and secret.password_env not in seen:
            seen.add(secret.password_env)
            env.append({"name": secret.password_env, "valueFrom": {"secretKeyRef": {"name": KEYS_SECRET, "key": secret.password_env, "optional": False}}})
    return env


def key_files(dep: Deployment) -> list[tuple[str, str]]:
    """(Secret key, path) of the files the processor reads its credentials from: provider keys,
    Redis passwords, and Redis TLS files (CA, client certificate and key)."""
    files = [(f"{p.name}.key", p.api_key_file) for p in dep.config.providers if p.api_key_file]
    files += [(f"{what}.password", s.password_file) for s, what in credentials(dep.config.redis) if s.password_file]
    r = dep.config.redis
    for conn, what in ((r, "redis"), (r and r.cache, "redis.cache")):
        if conn is not None and conn.tls is not None:
            tls = conn.tls
            files += [(f"{what}.{name}", path) for name, path in (("ca.crt", tls.ca_file), ("tls.crt", tls.cert_file),
                                                                 ("tls.key", tls.key_file)) if path]
    by_path = {path: key for key, path in reversed(files)}  # one mount per path: the first key naming it
    return [(key, path) for key, path in files if by_path[path] == key]


def tmp_limit(dep: Deployment) -> str:
    # /tmp holds the runtime dir and per-worker metric files; without Redis also the disk cache.
    cache = dep.config.cache
    extra = 0 if dep.config.redis is not None or not cache.enabled else cache.local_size_limit_bytes
    return f"{256 + extra // (1024 * 1024)}Mi"


def probe(dep: Deployment) -> dict[str, Any]:
    if not dep.mtls:
        return {"grpc": {"port": dep.ports[0], "service": EXT_PROC_SERVICE}, "timeoutSeconds": 2}
    # Kubelet's gRPC probe speaks plaintext only: the pod asks every worker itself, over the same
    # mutual TLS as Envoy (edge_ext.deploy.probe; about 0.3 s of CPU a run).
    return {"exec": {"command": ["python", "-m", "edge_ext.deploy.probe", "--config", CONFIG_PATH]}, "timeoutSeconds": 5}


def processor_deployment(dep: Deployment, istio: bool) -> dict[str, Any]:
    w = dep.workers
    ports = [{"name": f"grpc-worker-{i}", "containerPort": port} for i, port in enumerate(dep.ports)]
    annotations = {CONFIG_HASH: dep.text_hash()}
    if dep.metrics_port:
        ports.append({"name": "metrics", "containerPort": dep.metrics_port})
        annotations.update({"prometheus.io/scrape": "true", "prometheus.io/port": str(dep.metrics_port), "prometheus.io/path": "/metrics"})
    if istio:
        # Proxies open ext_proc streams themselves, outside Istio's capture and Istio's mTLS; a
        # processor sidecar enforcing STRICT mTLS would refuse them. The workers' own mutual TLS
        # authenticates the proxies instead.
        annotations["sidecar.istio.io/inject"] = "false"
    checks = probe(dep)
    mounts = [{"name": "config", "mountPath": CONFIG_PATH.rpartition("/")[0], "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "config", "configMap": {"name": CONFIG_MAP}}, {"name": "tmp", "emptyDir": {"sizeLimit": tmp_limit(dep)}}]
    if dep.mtls:
        mounts.append(pki.tls_mount())
        volumes.append(pki.tls_volume(pki.SERVER_SECRET))
    files = key_files(dep)
    if files:
        volumes.append({"name": "provider-keys", "secret": {"secretName": KEYS_SECRET, "defaultMode": 0o440, "items": [{"key": k, "path": k} for k, _ in files]}})
        # subPath mounts put each key exactly at its configured api_key_file (not live-updated).
        mounts += [{"name": "provider-keys", "mountPath": path, "subPath": k, "readOnly": True} for k, path in files]
    container = {
        "name": "processor",
        "image": IMAGE,
        "args": ["serve", "--config", CONFIG_PATH],
        "ports": ports,
        "env": key_env(dep),
        # Envoy health-checks every worker each second and ejects it on its own; these probes
        # decide DNS listing and restarts.
        "readinessProbe": {**checks, "periodSeconds": 10 if dep.mtls else 5, "failureThreshold": 2},
        "livenessProbe": {**checks, "initialDelaySeconds": 15, "periodSeconds": 10, "failureThreshold": 3},
        # Envoy drops a pod once headless DNS stops listing it (TTL + refresh, about 10 s); the
        # workers keep accepting streams until then, and SIGTERM afterwards drains them.
        "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
        # One worker is one Python process, at most one core busy.
        "resources": {"requests": {"cpu": f"{500 * w}m", "memory": f"{192 * w + 64}Mi"}, "limits": {"cpu": str(w), "memory": f"{512 * w}Mi"}},
        "securityContext": container_security(),
        "volumeMounts": mounts,
    }
    if not container["env"]:
        del container["env"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(PROCESSOR, "processor"),
        # No `replicas`: the HPA owns it, and re-applying these files must not reset a scale-out.
        "spec": {
            "selector": {"matchLabels": labels("processor")},
            # Fail closed means no processor, no traffic: never take capacity away during a rollout.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels("processor"), "annotations": annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security(),
                    "affinity": spread("processor"),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def processor_objects(dep: Deployment, istio: bool) -> list[tuple[str, dict[str, Any]]]:
    service_ports = [{"name": f"grpc-worker-{i}", "port": port, "targetPort": port, "appProtocol": "grpc"} for i, port in enumerate(dep.ports)]
    if dep.metrics_port:
        service_ports.append({"name": "metrics", "port": dep.metrics_port, "targetPort": dep.metrics_port, "appProtocol": "http"})
    selector = {"matchLabels": labels("processor")}
    return [
        (f"The edge-ext config, {'adapted for pods (see its header)' if dep.changes else 'as written'}.",
         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(CONFIG_MAP, "processor"), "data": {"config.yaml": dep.text}}),
        (f"`edge-ext serve`: {dep.workers} workers per pod, worker N on port {dep.ports[0]}+N, "
         + (f"behind mutual TLS with the {pki.SERVER_SECRET} certificate." if dep.mtls else f"IN PLAINTEXT.\n{PLAINTEXT_WARNING}")
         + f"\nProvider keys come from the {KEYS_SECRET} Secret (see secret.example.yaml); the pod template carries the "
         "config's hash, so a changed config rolls the pods.\nThe admin API listens on a Unix socket per worker inside the "
         "pod, with the pod's own token (kubectl exec, see docs/deployment.md).", processor_deployment(dep, istio)),
        ("Headless: DNS returns every ready pod, and Envoy's STRICT_DNS cluster makes one endpoint per pod\n"
         "and worker port, so it balances, health-checks and ejects workers itself.",
         {"apiVersion": "v1", "kind": "Service", "metadata": meta(PROCESSOR, "processor"),
          "spec": {"clusterIP": "None", "selector": labels("processor"), "ports": service_ports}}),
        ("Scale on CPU: every request costs the processor two messages of parsing and policy work.\n"
         "Scale-in waits 5 minutes so a bursty load does not flap the Envoy endpoint sets.",
         {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(PROCESSOR, "processor"),
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": PROCESSOR},
                   "minReplicas": 2, "maxReplicas": 10,
                   "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
                   "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}}}),
        ("Voluntary disruptions (node drains) take one processor pod at a time.",
         {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(PROCESSOR, "processor"),
          "spec": {"maxUnavailable": 1, "selector": selector}}),
    ]


def redis_objects(istio: bool) -> list[tuple[str, dict[str, Any]]]:
    annotations = {"sidecar.istio.io/inject": "false"} if istio else {}
    exec_ping = {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 10, "timeoutSeconds": 2}
    container = {
        "name": "redis",
        "image": f"{REDIS_IMAGE_NAME}:{REDIS_IMAGE_TAG}",
        # A cache: no persistence. volatile-lru evicts only keys with a TTL (cache entries), never
        # TTL-less counters; when those fill memory, writes fail and edge-ext treats L2 as a miss.
        "args": ["--save", "", "--appendonly", "no", "--maxmemory", "384mb", "--maxmemory-policy", "volatile-lru"],
        "ports": [{"name": "redis", "containerPort": 6379}],
        "readinessProbe": exec_ping,
        "livenessProbe": {"tcpSocket": {"port": "redis"}, "initialDelaySeconds": 10, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "100m", "memory": "448Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    template_meta: dict[str, Any] = {"labels": labels("redis")}
    if annotations:
        template_meta["annotations"] = annotations
    return [
        ("One Redis shared by all processor replicas: the L2 cache tier, circuit breakers and budgets. Without\n"
         "persistence: a restart empties the cache and resets shared spend. To use an existing Redis instead\n"
         "(replicated: Sentinel or Cluster, persistent), set the redis section of the edge-ext config and\n"
         "re-render: this file then disappears and the NetworkPolicy allows that Redis's ports.",
         {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(REDIS, "redis"),
          "spec": {"replicas": 1, "selector": {"matchLabels": labels("redis")}, "strategy": {"type": "Recreate"},
                   "template": {"metadata": template_meta,
                                "spec": {"automountServiceAccountToken": False, "securityContext": pod_security(REDIS_UID),
                                         "containers": [container], "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "64Mi"}}]}}}}),
        ("", {"apiVersion": "v1", "kind": "Service", "metadata": meta(REDIS, "redis"),
              "spec": {"selector": labels("redis"), "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}]}}),
    ]


def certificates(dep: Deployment, istio: bool) -> list[tuple[str, dict[str, Any]]]:
    server = ("The workers' server certificate, for the processor Service's names; the pods mount its Secret at\n"
              f"{pki.TLS_DIR}, where the config's processor.mtls points.", pki.server_certificate(dep, cluster=istio))
    if istio:
        return [server]  # the CA is a ClusterIssuer, in ../pki
    return [*pki.ca_objects(cluster=False), server]


def secret_example(dep: Deployment) -> str:
    data = {env["name"]: f"REPLACE-ME: the {env['name']} value" for env in key_env(dep)}
    data.update({k: f"REPLACE-ME: the key file content for {path}" for k, path in key_files(dep)})
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": KEYS_SECRET, "namespace": dep.namespace, "labels": labels("processor")},
              "type": "Opaque", "stringData": data}
    return comment(
        "EXAMPLE ONLY, not listed in kustomization.yaml: every value is a placeholder. Create the real\n"
        "Secret out of band, e.g.\n"
        f"  kubectl -n {dep.namespace} create secret generic {KEYS_SECRET} "
        + " ".join(f"--from-literal={k}=..." for k in data)
        + "\nor with your secret manager (External Secrets, Sealed Secrets). Never commit real keys."
    ) + dump(secret)


def base(dep: Deployment, istio: bool = False) -> dict[str, str]:
    """Files of the kustomize base, relative to its directory."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": dep.namespace, "labels": {
        # Every pod here meets the restricted Pod Security Standard; enforce it.
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": f"v{K8S_VERSION}"}}}
    files = {
        "namespace.yaml": documents(RENDERED, [("", namespace)]),
        "processor.yaml": documents(RENDERED + f"\nKubernetes {K8S_VERSION}.", processor_objects(dep, istio)),
        "network-policy.yaml": documents(RENDERED, network_policies(dep, istio)),
        "secret.example.yaml": secret_example(dep),
    }
    resources = ["namespace.yaml", "processor.yaml", "network-policy.yaml"]
    if dep.mtls:
        files["certificates.yaml"] = documents(RENDERED + "\nNeeds cert-manager (cert-manager.io/v1).", certificates(dep, istio))
        resources.append("certificates.yaml")
    images = [{"name": IMAGE_NAME, "newTag": IMAGE_TAG}]
    if dep.in_cluster_redis:
        files["redis.yaml"] = documents(RENDERED, redis_objects(istio))
        resources.append("redis.yaml")
        images.append({"name": REDIS_IMAGE_NAME, "newTag": REDIS_IMAGE_TAG})
    files["kustomization.yaml"] = kustomization(
        f"edge-ext processor base for Kubernetes {K8S_VERSION}. {RENDERED}\n"
        "Override the image here (images: newName/newTag) or in an overlay. The provider-key Secret is\n"
        "not a resource here: create it yourself (secret.example.yaml shows its shape).",
        namespace=dep.namespace, resources=resources, images=images,
    )
    return files
