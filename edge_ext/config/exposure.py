"""What a valid config leaves exposed: the warnings `edge-ext check-config` prints and `up` and
`serve` log at start.

Each is a deployment an operator may mean (a listener behind a TLS-terminating load balancer, an
auth-less edge in a trusted mesh), so none is refused; the one that is not a choice, a provider
key sent in plaintext across a network, is refused by the config itself unless
``allow_insecure_http`` says otherwise.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from edge_ext.config.hosts import is_loopback
from edge_ext.config.models import Config


def exposure_warnings(config: Config) -> list[str]:
    found: list[str] = []
    listen = config.listen
    if not is_loopback(listen.host):
        if listen.tls is None:
            found.append(f"listen.host {listen.host} is reachable from other machines without listen.tls: client keys "
                         "and prompts cross the network in plaintext (unless a proxy in front terminates TLS)")
        if not config.auth.on:
            found.append(f"listen.host {listen.host} is reachable from other machines and auth has no client keys: "
                         "anyone who reaches it is served on the providers' keys")
    for index, p in enumerate(config.providers):
        if p.sends_key_in_plaintext:
            found.append(f"providers[{index}] ({p.name}): its key goes to {p.base_url} unencrypted (allow_insecure_http)")
        if p.timeout_s > listen.stream_idle_timeout_s:
            found.append(f"providers[{index}] ({p.name}).timeout_s {p.timeout_s:g}s exceeds listen.stream_idle_timeout_s "
                         f"{listen.stream_idle_timeout_s:g}s: a non-streamed answer slower than that is cut off")
    if config.metrics.enabled and not is_loopback(config.metrics.host):
        found.append(f"metrics.host {config.metrics.host}: per-tenant spend and key ids are served to whoever reaches "
                     f"port {config.metrics.port}")
    admin = config.envoy.admin
    if admin.port is not None and not is_loopback(admin.host):  # no port: a 0600 Unix socket
        found.append(f"envoy.admin.host {admin.host}: Envoy's admin API (it can stop the edge and dump its config) is "
                     "reachable from other machines")
    telemetry = config.telemetry
    if telemetry.plaintext and not is_loopback(urlsplit(telemetry.otlp_endpoint).hostname or ""):
        found.append(f"telemetry: spans (tenants, key ids, models, costs) go unencrypted to {telemetry.otlp_endpoint} "
                     "(insecure: true)")
    r = config.redis
    for conn, what in ((r, "redis"), (r and r.cache, "redis.cache")):
        if conn is not None and not conn.uses_tls and not all(is_loopback(host) for host, _ in conn.addresses()):
            found.append(f"{what}: Redis is reached without TLS across a network: cached prompts and answers, spend and "
                         "client keys travel unencrypted (rediss:// or redis.tls)")
    return found
