"""A real etcd (/usr/bin/etcd) on free 127.0.0.1 ports, started and stopped by PID.

Import the fixtures into a test module: `from tests.fixtures_etcd import etcd_fixture, ...`
(registered under the names `etcd` and `etcd_private`, so test arguments do not shadow imports).
`etcd` is shared by the tests of a module (tests use distinct keys); `etcd_private` is a fresh
server per test, for tests that stop, kill or restart it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"
START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int, tls: ssl.SSLContext | None = None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
            s = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls is not None else raw
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return False
    return b'"health":"true"' in data


@dataclass
class EtcdTls:
    """Server certificate and key, the CA, and a client certificate (for etcdctl and health)."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


class EtcdServer:
    """One etcd member; `restart()` keeps the data dir and both ports. With `tls`, clients
    speak TLS and must show a certificate (`--client-cert-auth`); `args` adds options
    (`--auth-token-ttl`, ...); `name`/`initial_cluster` make it a member of a cluster."""

    def __init__(self, data_dir: Path, *, tls: EtcdTls | None = None, args: list[str] | None = None,
                 name: str = "default") -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"etcd-{self.port}.log"
        self.tls = tls
        self.args = args or []
        self.name = name
        self.initial_cluster = f"{name}=http://127.0.0.1:{self.peer_port}"
        self.user: str | None = None          # NAME:PASSWORD for etcdctl once auth is on

    @property
    def endpoint(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.launch()
        self.wait_healthy()

    def launch(self) -> None:
        scheme = "https" if self.tls is not None else "http"
        client = f"{scheme}://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [
            ETCD_BIN, "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", self.initial_cluster, *self.args,
        ]
        if self.tls is not None:
            cmd += ["--cert-file", str(self.tls.cert), "--key-file", str(self.tls.key),
                    "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def wait_healthy(self) -> None:
        assert self.proc is not None
        ctx = self.tls.client_context() if self.tls is not None else None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log_path.read_text()[-2000:]}")
            if _healthy(self.port, ctx):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd not healthy in {START_TIMEOUT}s: {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def etcdctl(self, *args: str, input: bytes | None = None) -> str:
        flags = [f"--endpoints={self.url}"]
        if self.tls is not None:
            flags += [f"--cacert={self.tls.ca}", f"--cert={self.tls.client_cert}",
                      f"--key={self.tls.client_key}"]
        if self.user is not None:
            flags.append(f"--user={self.user}")
        out = subprocess.run(
            ["etcdctl", *flags, *args],
            input=input, capture_output=True, check=True, timeout=10,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        return out.stdout.decode()

    def put(self, key: str, value: str) -> None:
        # value through stdin so YAML starting with "-" is not read as a flag
        self.etcdctl("put", key, input=value.encode())

    def keys(self, prefix: str) -> list[str]:
        out = self.etcdctl("get", prefix, "--prefix", "--keys-only")
        return [line for line in out.splitlines() if line]


@pytest.fixture(scope="module", name="etcd")
def etcd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(name="etcd_private")
def etcd_private_fixture(tmp_path: Path) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path / "data")
    server.start()
    yield server
    server.stop()


def make_etcd_tls(folder: Path) -> EtcdTls:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made now."""
    from tests.tls.certkit import Authority

    folder.mkdir(parents=True, exist_ok=True)
    ca = Authority.root("edgeward etcd test CA")
    (folder / "ca.pem").write_bytes(ca.pem)
    cert, key = ca.issue(["127.0.0.1"]).write(folder / "server")
    client_cert, client_key = ca.issue(["gateway"], client=True).write(folder / "client")
    return EtcdTls(folder / "ca.pem", cert, key, client_cert, client_key)


# Fast elections for a local cluster: heartbeat 50 ms, election after 500 ms without one
# (etcd's defaults are 100 ms and 1000 ms; the tuning guide keeps the ratio >= 5x heartbeat).
CLUSTER_ARGS = ["--heartbeat-interval", "50", "--election-timeout", "500",
                "--initial-cluster-token", "edgeward-test"]


class EtcdCluster:
    """Three etcd members on 127.0.0.1 forming one cluster; `members[i].stop()` loses one."""

    def __init__(self, folder: Path, size: int = 3) -> None:
        self.members = [EtcdServer(folder / f"m{i}" / "data", args=CLUSTER_ARGS, name=f"m{i}")
                        for i in range(size)]
        initial = ",".join(m.initial_cluster for m in self.members)
        for m in self.members:
            m.initial_cluster = initial

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [m.endpoint for m in self.members]

    def start(self) -> EtcdCluster:
        for m in self.members:
            m.data_dir.parent.mkdir(parents=True, exist_ok=True)
            m.launch()
        for m in self.members:
            m.wait_healthy()
        return self

    def alive(self) -> list[EtcdServer]:
        return [m for m in self.members if m.proc is not None]

    def stop(self) -> None:
        for m in self.members:
            m.stop()


SECURE_USER, SECURE_PASSWORD = "gw", "etcd-pw-71c0"


def start_secure_etcd(folder: Path, token_ttl: int = 300) -> EtcdServer:
    """An etcd serving TLS only (client certificates required) with auth enabled: `root`
    and SECURE_USER, whose role reads and writes /edgeward/. etcdctl then runs as root."""
    tls = make_etcd_tls(folder / "certs")
    server = EtcdServer(folder / "data", tls=tls, args=["--auth-token-ttl", str(token_ttl)])
    server.start()
    for args in (["user", "add", "root:root-pw"],
                 ["user", "add", f"{SECURE_USER}:{SECURE_PASSWORD}"],
                 ["role", "add", "edgeward"],
                 ["role", "grant-permission", "edgeward", "readwrite", "/edgeward/",
                  "--prefix=true"],
                 ["user", "grant-role", SECURE_USER, "edgeward"], ["auth", "enable"]):
        server.etcdctl(*args)
    server.user = "root:root-pw"
    return server
