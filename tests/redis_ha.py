"""Highly available Redis on loopback for tests: a Redis Cluster of 3 primaries with a replica
each, and a primary with one replica watched by 3 sentinels. Every process is started here, on
free ports, and stopped by ``cleanup``; ``kill_primary`` SIGKILLs one primary, as a crash would.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.redis_server import redis_binary
from tests.support import free_ports, wait_until

# Failure detection in a second: the replica takes over within a few.
NODE_TIMEOUT_MS = 1000
SENTINEL_MASTER = "edge-primary"


class _Processes:
    def __init__(self, prefix: str, password: str):
        self.password = password  # every server's, and what replicas and sentinels present
        self.binary = redis_binary()
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.procs: dict[int, subprocess.Popen] = {}  # by port

    def spawn(self, port: int, *args: str) -> None:
        workdir = self.dir / str(port)
        workdir.mkdir(exist_ok=True)
        log = open(workdir / "log", "wb")
        # No 5 s wait before a replica's first sync: it can only take over once in sync.
        self.procs[port] = subprocess.Popen([self.binary, *args, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                             "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--dir", str(workdir)],
                                            stdout=log, stderr=subprocess.STDOUT)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, socket_timeout=1, socket_connect_timeout=1)

    def auth(self) -> list[str]:
        return ["--requirepass", self.password, "--masterauth", self.password]

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _sentinel(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)


def _in_sync(replication: dict) -> bool:
    return replication.get("master_link_status") == "up" and not replication.get("master_sync_in_progress")


class RedisClusterHA(_Processes):
    """3 primaries and 3 replicas, each replicating one primary."""

    def __init__(self, password: str):
        super().__init__("edge-redis-cluster-", password)
        # Six client ports and six cluster-bus ports, all distinct.
        ports = free_ports(12)
        self.ports, self._buses = ports[:6], dict(zip(ports[:6], ports[6:]))

    @property
    def section(self) -> dict:
        """The `redis` section of an edge config for this cluster."""
        return {"cluster": {"nodes": [f"127.0.0.1:{p}" for p in self.ports[:3]]}}

    def start(self) -> None:
        buses = self._buses
        for port in self.ports:
            # The cluster bus needs a port of its own, free as well (default: port + 10000).
            self.spawn(port, *self.auth(), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                       "--cluster-port", str(buses[port]), "--cluster-node-timeout", str(NODE_TIMEOUT_MS))
        for port in self.ports:
            wait_until(lambda: self.client(port).ping(), timeout=10, what=f"cluster node {port} up")
        self._form(buses)
        wait_until(self.healthy, timeout=30, what="cluster ok, each primary with a replica in sync")

    def _form(self, buses: dict[int, int]) -> None:
        """What ``redis-cli --cluster create --cluster-replicas 1`` does, with the commands
        themselves: the wheel that brings redis-server brings no redis-cli."""
        primaries, replicas = self.ports[:3], self.ports[3:]
        first = self.client(primaries[0])
        for port in self.ports[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", port, buses[port])
        step = 16384 // len(primaries)
        for i, port in enumerate(primaries):
            end = 16383 if i == len(primaries) - 1 else (i + 1) * step - 1
            self.client(port).execute_command("CLUSTER", "ADDSLOTSRANGE", i * step, end)
        ids = {port: self.client(port).execute_command("CLUSTER", "MYID").decode() for port in primaries}
        for primary, replica in zip(primaries, replicas):
            client = self.client(replica)

            def knows_primary() -> bool:
                return ids[primary].encode() in client.execute_command("CLUSTER", "NODES")

            wait_until(knows_primary, timeout=15, what=f"node {replica} met {primary}")
            client.execute_command("CLUSTER", "REPLICATE", ids[primary])

    def live_ports(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def healthy(self) -> bool:
        """Every slot served, and 3 primaries with a replica in sync each."""
        for port in self.live_ports():
            if b"cluster_state:ok" not in self.client(port).execute_command("CLUSTER", "INFO"):
                return False
        roles = [self.client(p).info("replication") for p in self.live_ports()]
        replicas = [r for r in roles if r["role"] == "slave"]
        return len(roles) - len(replicas) == 3 and len(replicas) == 3 and all(_in_sync(r) for r in replicas)

    def primary_of(self, key: str) -> int:
        """The port of the primary serving ``key``'s slot now."""
        some = self.client(self.live_ports()[0])
        slot = some.execute_command("CLUSTER", "KEYSLOT", key)
        for start, end, primary, *_ in some.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise AssertionError(f"slot {slot} is not served")

    def failed_over(self, old_primary: int) -> bool:
        """The dead primary's slots are served by its former replica."""
        some = self.client(self.live_ports()[0])
        if b"cluster_state:ok" not in some.execute_command("CLUSTER", "INFO"):
            return False
        return all(int(primary[1]) != old_primary for _, _, primary, *_ in some.execute_command("CLUSTER", "SLOTS"))


class RedisSentinelHA(_Processes):
    """A primary, one replica and 3 sentinels (quorum 2)."""

    def __init__(self, password: str):
        super().__init__("edge-redis-sentinel-", password)
        self.primary, self.replica, *self.sentinels = free_ports(5)

    @property
    def section(self) -> dict:
        return {"sentinel": {"master": SENTINEL_MASTER, "nodes": [f"127.0.0.1:{p}" for p in self.sentinels]}}

    def start(self) -> None:
        self.spawn(self.primary, *self.auth())
        self.spawn(self.replica, *self.auth(), "--replicaof", "127.0.0.1", str(self.primary))
        for port in self.sentinels:
            # A sentinel rewrites its config file: one each, in its own directory.
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {self.primary} 2\n"
                            f"sentinel auth-pass {SENTINEL_MASTER} {self.password}\n"
                            f"sentinel down-after-milliseconds {SENTINEL_MASTER} {NODE_TIMEOUT_MS}\n"
                            f"sentinel failover-timeout {SENTINEL_MASTER} 5000\n")
            self.spawn(port, str(conf), "--sentinel")
        wait_until(self.healthy, timeout=30, what="sentinels see the primary, its replica and each other")

    def healthy(self) -> bool:
        if not _in_sync(self.client(self.replica).info("replication")):
            return False
        for port in self.sentinels:
            master = _sentinel(port).sentinel_master(SENTINEL_MASTER)
            if int(master["num-slaves"]) < 1 or int(master["num-other-sentinels"]) < 2:
                return False
        return True

    def failed_over(self) -> bool:
        """Every sentinel names the former replica, and it accepts writes."""
        if any(int(_sentinel(p).sentinel_get_master_addr_by_name(SENTINEL_MASTER)[1]) != self.replica for p in self.sentinels):
            return False
        return self.client(self.replica).info("replication")["role"] == "master"
