"""The `redis` section and the clients built from it: one server, Sentinel, Cluster, TLS, and the
password from the environment or a file. Pure: no client connects here."""

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from edge_ext.config import ConfigInvalid, parse_config
from edge_ext.config.exposure import exposure_warnings
from edge_ext.config.redis import RedisConnection
from edge_ext.errors import ConfigError
from edge_ext.redis_clients import check_credentials, connect

MINIMAL = """\
providers:
  - {name: p, kind: openai, base_url: "http://127.0.0.1:18080", models: [m]}
"""


def with_redis(section: str, extra: str = "") -> str:
    return MINIMAL + extra + "redis: " + section + "\n"


GOOD = [
    pytest.param("{url: 'redis://127.0.0.1:6379/2'}", id="one-server"),
    pytest.param("{url: 'rediss://redis.internal:6380/0', tls: {ca_file: /etc/ca.pem}}", id="tls-with-a-ca"),
    pytest.param("{url: 'rediss://redis.internal', username: edge, password_env: REDIS_PASSWORD}", id="tls-system-cas-acl-user"),
    pytest.param("{sentinel: {master: mymaster, nodes: ['10.0.0.1:26379', '10.0.0.2:26379']}, password_file: /run/pw}",
                 id="sentinel"),
    pytest.param("{cluster: {nodes: ['10.0.0.1:6379', '[fd00::1]:6379']}, tls: {check_hostname: false}}", id="cluster-tls-by-ip"),
    pytest.param("{url: 'redis://127.0.0.1', cache: {url: 'redis://127.0.0.1:6380'}}", id="cache-on-its-own-redis"),
]


@pytest.mark.parametrize("section", GOOD)
def test_good_sections_load(section):
    assert parse_config(with_redis(section)).redis is not None


BAD = [
    pytest.param(with_redis("{timeout_ms: 100}"), "redis", "exactly one of url, sentinel, cluster", id="no-server"),
    pytest.param(with_redis("{url: 'redis://a', cluster: {nodes: ['b:1']}}"), "redis", "(found url, cluster)", id="two-kinds"),
    pytest.param(with_redis("{url: 'redis://user:hunter2@a:6379'}"), "redis.url", "credentials do not belong", id="password-in-url"),
    pytest.param(with_redis("{url: 'http://a'}"), "redis.url", "redis://host:port/db", id="not-a-redis-url"),
    pytest.param(with_redis("{url: 'redis://a/99'}"), "redis.url", "0 to 15", id="bad-database"),
    pytest.param(with_redis("{url: 'redis://a', tls: {ca_file: /ca}}"), "redis", "use rediss://", id="tls-on-plain-url"),
    pytest.param(with_redis("{cluster: {nodes: ['10.0.0.1']}}"), "redis.cluster.nodes", "'10.0.0.1' is not host:port", id="node-without-port"),
    pytest.param(with_redis("{url: 'redis://a', password_env: X, password_file: /x}"), "redis", "not both", id="two-password-sources"),
    pytest.param(with_redis("{url: 'rediss://a', tls: {cert_file: /c}}"), "redis.tls", "go together", id="cert-without-key"),
    pytest.param(with_redis("{sentinel: {master: m, nodes: []}}"), "redis.sentinel.nodes", "at least 1", id="no-sentinels"),
    pytest.param(MINIMAL + "auth: {redis_keys: true}\n", "(top)", "configure the redis section", id="redis-keys-without-redis"),
]


@pytest.mark.parametrize("text, path, message", BAD)
def test_bad_sections_name_the_key(text, path, message):
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text)
    assert [(p.path, message in p.message) for p in info.value.problems] == [(path, True)], info.value.problems


REPLACED = [
    pytest.param("cache", 2, "redis.url, or redis.cache", id="cache"),
    pytest.param("routing", 2, "breakers are shared", id="routing"),
    pytest.param("budgets", 2, "spend is shared", id="budgets"),
    pytest.param("auth", 2, "auth.redis_keys: true", id="auth"),
]


@pytest.mark.parametrize("section, line, message", REPLACED)
def test_old_redis_url_keys_are_refused_naming_the_new_key(section, line, message):
    text = MINIMAL.replace("providers:", f"{section}:\n  redis_url: redis://127.0.0.1:6379/0\nproviders:")
    with pytest.raises(ConfigInvalid) as info:
        parse_config(text)
    (problem,) = info.value.problems
    assert (problem.path, problem.line) == (f"{section}.redis_url", line) and "replaced by" in problem.message
    assert message in problem.message


def conn(**section) -> RedisConnection:
    return RedisConnection.model_validate(section)


def test_one_server_client_carries_db_credentials_and_timeouts(monkeypatch):
    monkeypatch.setenv("EDGE_TEST_REDIS_PW", "s3cret-from-env")
    client = connect(conn(url="redis://10.1.2.3:6380/4", username="edge", password_env="EDGE_TEST_REDIS_PW", timeout_ms=250))
    kwargs = client.connection_pool.connection_kwargs
    assert type(client) is Redis
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("10.1.2.3", 6380, 4)
    assert (kwargs["username"], kwargs["password"]) == ("edge", "s3cret-from-env")
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.25
    assert kwargs["retry"].get_retries() == 1  # one reconnect, no backoff: a request is waiting
    assert "s3cret" not in repr(client) and "s3cret" not in repr(client.connection_pool)


def test_tls_client_verifies_the_server_with_the_configured_ca(tmp_path):
    client = connect(conn(url="rediss://redis.internal:6380/0",
                          tls={"ca_file": "/etc/ca.pem", "cert_file": "/etc/c.pem", "key_file": "/etc/c.key"}))
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == ("/etc/ca.pem", "/etc/c.pem", "/etc/c.key")
    assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is True


def test_sentinel_client_asks_the_sentinels_for_the_named_primary(tmp_path):
    (tmp_path / "pw").write_text("from-a-file\n")
    (tmp_path / "sentinel-pw").write_text("sentinels-own\n")
    client = connect(conn(sentinel={"master": "mymaster", "nodes": ["10.0.0.1:26379", "10.0.0.2:26379"], "db": 3,
                                    "password_file": str(tmp_path / "sentinel-pw")},
                          password_file=str(tmp_path / "pw")))
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster" and pool.is_master
    assert pool.connection_kwargs["password"] == "from-a-file" and pool.connection_kwargs["db"] == 3
    sentinels = pool.sentinel_manager.sentinels
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"]) for s in sentinels] == [
        ("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert all(s.connection_pool.connection_kwargs["password"] == "sentinels-own" for s in sentinels)


def test_cluster_client_starts_from_the_listed_nodes():
    client = connect(conn(cluster={"nodes": ["10.0.0.1:7000", "10.0.0.2:7001"]}, tls={"check_hostname": False}))
    assert isinstance(client, RedisCluster)
    assert sorted(client.nodes_manager.startup_nodes) == ["10.0.0.1:7000", "10.0.0.2:7001"]
    assert client.retry.get_retries() == 0  # a failed command refreshes the slot map for the next
    assert client.connection_kwargs["ssl_check_hostname"] is False



@pytest.mark.parametrize("tls", [None, {"check_hostname": False}], ids=["plain", "tls"])
def test_a_cluster_command_on_a_connection_another_task_closed_is_unavailable(tls):
    import asyncio

    from redis.asyncio.connection import SSLConnection

    from edge_ext.redis_clients import UNAVAILABLE

    client = connect(conn(cluster={"nodes": ["10.0.0.1:7000"]}, tls=tls))
    node = client.nodes_manager.startup_nodes["10.0.0.1:7000"]
    later = client.nodes_manager.connection_kwargs["connection_class"]  # nodes the slot map finds
    assert node.connection_class is later and issubclass(later, SSLConnection) is (tls is not None)
    # The cluster client closed it (its node failed) while this command held it: writer gone.
    connection = node.connection_class(**node.connection_kwargs)
    with pytest.raises(UNAVAILABLE, match="closed by another task"):
        asyncio.run(connection._send_packed_command([b"PING"]))

@pytest.mark.parametrize("section, source", [
    pytest.param({"url": "redis://a", "password_env": "EDGE_TEST_UNSET_PW"}, "$EDGE_TEST_UNSET_PW", id="env-unset"),
    pytest.param({"url": "redis://a", "password_file": "/nonexistent/pw"}, "/nonexistent/pw", id="file-missing"),
    pytest.param({"sentinel": {"master": "m", "nodes": ["a:1"], "password_env": "EDGE_TEST_UNSET_PW"}},
                 "redis.sentinel: no password in $EDGE_TEST_UNSET_PW", id="sentinel-env-unset"),
])
def test_a_password_that_cannot_be_read_stops_the_start_naming_its_source(section, source, monkeypatch):
    monkeypatch.delenv("EDGE_TEST_UNSET_PW", raising=False)
    config = parse_config(MINIMAL + "redis: " + repr(section).replace("'", '"') + "\n")
    with pytest.raises(ConfigError, match=source.replace("$", r"\$")):
        check_credentials(config)


@pytest.mark.parametrize("section, warned", [
    pytest.param("{url: 'redis://127.0.0.1:6379'}", False, id="loopback"),
    pytest.param("{url: 'redis://redis.internal:6379'}", True, id="plaintext-across-a-network"),
    pytest.param("{url: 'rediss://redis.internal:6379'}", False, id="tls"),
    pytest.param("{cluster: {nodes: ['10.0.0.1:6379']}, tls: {}}", False, id="cluster-tls"),
    pytest.param("{url: 'redis://127.0.0.1', cache: {url: 'redis://cache.internal'}}", True, id="cache-redis-plaintext"),
])
def test_plaintext_redis_off_this_machine_is_a_warning(section, warned):
    found = [w for w in exposure_warnings(parse_config(with_redis(section))) if "Redis is reached without TLS" in w]
    assert bool(found) is warned
