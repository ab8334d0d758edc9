"""Real Redis deployments for tests and benchmarks, on free 127.0.0.1 ports, stopped by PID:

- `tls_redis(folder)`: a redis-server serving TLS only (`--tls-port`), with a CA, a server
  certificate and a client certificate made at test time (mutual TLS required);
- `SentinelGroup`: a master, one replica and one redis-sentinel watching them (quorum 1,
  down-after 1000 ms), so a stopped master fails over in about two seconds;
- `RedisClusterNodes`: three `redis-server --cluster-enabled yes` nodes joined with
  `redis-cli --cluster create` (no replicas), each master of a third of the slots.
"""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.gateway import free_port
from tests.support.redis_server import RedisServer
from tests.tls.certkit import Authority

REDIS_SENTINEL = "/usr/bin/redis-sentinel"
REDIS_CLI = "/usr/bin/redis-cli"
MASTER_NAME = "edge-master"
# Sentinel's failure detection: 1 s without a reply marks the master down (the default is
# 30 s); the failover timeout bounds a stuck failover.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


@dataclass
class TlsFiles:
    ca: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def make_tls_files(folder: Path) -> tuple[TlsFiles, Path, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = Authority.root("edgeward redis test CA")
    (folder / "ca.pem").write_bytes(ca.pem)
    server_cert, server_key = ca.issue(["127.0.0.1"]).write(folder / "server")
    client_cert, client_key = ca.issue(["gateway"], client=True).write(folder / "client")
    return TlsFiles(folder / "ca.pem", client_cert, client_key), server_cert, server_key


def tls_redis(folder: Path, args: list[str] | None = None) -> tuple[RedisServer, TlsFiles]:
    files, cert, key = make_tls_files(folder)
    server = RedisServer(
        ["--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(files.ca), "--tls-auth-clients", "yes", *(args or [])],
        tls=files.client_context())
    return server, files


class SentinelGroup:
    """master + replica + one Sentinel (quorum 1)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.master = RedisServer()
        self.replica = RedisServer(["--replicaof", "127.0.0.1", str(self.master.port)])
        self.sentinel = RedisServer()       # its port and command(); started below
        self.config = folder / "sentinel.conf"

    def start(self) -> SentinelGroup:
        self.master.start()
        self.replica.start()
        self.config.write_text(
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n")
        self._start_sentinel()
        self.wait_synced()
        return self

    def _start_sentinel(self) -> None:
        """redis-sentinel takes its config file first (and rewrites it as it learns)."""
        s = self.sentinel
        proc = subprocess.Popen(
            [REDIS_SENTINEL, str(self.config), "--port", str(s.port), "--bind", "127.0.0.1",
             "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s.proc = proc
        wait_for(lambda: s.command("PING") == "PONG", 5, "redis-sentinel did not start")

    def wait_synced(self, timeout: float = 10) -> None:
        wait_for(lambda: "master_link_status:up" in self.replica.command("INFO", "replication"),
                 timeout, "the replica did not sync")

    def master_port(self) -> int:
        """The master's port as the Sentinel sees it now."""
        text = self.sentinel.command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)
        return int(text.split()[-1]) if text else 0

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            server.stop()


class RedisClusterNodes:
    """Three cluster-enabled redis-servers, joined into one cluster of three masters."""

    def __init__(self, folder: Path, count: int = 3) -> None:
        self.nodes = [
            RedisServer(["--cluster-enabled", "yes",
                         "--cluster-config-file", str(folder / f"nodes-{i}.conf"),
                         "--cluster-node-timeout", "2000",
                         # the bus port defaults to port + 10000, which may be taken or
                         # beyond 65535 for a free port picked by the kernel
                         "--cluster-port", str(free_port())])
            for i in range(count)]

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.nodes]

    def start(self) -> RedisClusterNodes:
        for node in self.nodes:
            node.start()
        subprocess.run([REDIS_CLI, "--cluster", "create", *self.addresses,
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=30)
        for node in self.nodes:
            wait_for(lambda n=node: "cluster_state:ok" in n.command("CLUSTER", "INFO"), 10,
                     "the cluster did not become ok")
        return self

    def node_id(self, node: RedisServer) -> str:
        return node.command("CLUSTER", "MYID")

    def owner(self, slot: int) -> RedisServer:
        for node in self.nodes:
            if self._serves(node, slot):
                return node
        raise AssertionError(f"no node serves slot {slot}")

    def _serves(self, node: RedisServer, slot: int) -> bool:
        text = node.command("CLUSTER", "NODES")
        for line in text.splitlines():
            if "myself" not in line:
                continue
            for part in line.split()[8:]:
                lo, _, hi = part.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    return True
        return False

    def script_calls(self) -> int:
        return sum(n.script_calls() for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def wait_for(predicate: object, timeout: float, message: str) -> float:
    """Poll predicate() (OSError counts as not yet) until true; the seconds it took."""
    assert callable(predicate)
    start = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except (OSError, RuntimeError):
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(message)
        time.sleep(0.02)


@contextmanager
def started(thing: SentinelGroup | RedisClusterNodes) -> Iterator[None]:
    try:
        thing.start()
        yield
    finally:
        thing.stop()
