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
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ETCD_BIN = shutil.which("etcd") or "/usr/bin/etcd"
START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return False
    return b'"health":"true"' in data


class EtcdServer:
    """One etcd member; `restart()` keeps the data dir and both ports."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"etcd-{self.port}.log"

    @property
    def endpoint(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [
            ETCD_BIN, "--name", "default", "--data-dir", str(self.data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log_path.read_text()[-2000:]}")
            if _healthy(self.port):
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
        out = subprocess.run(
            ["etcdctl", f"--endpoints={self.url}", *args],
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
