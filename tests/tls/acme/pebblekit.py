"""A real ACME CA for tests: Debian's `pebble` (Let's Encrypt's test CA) with
`pebble-challtestsrv` as its DNS server (every name resolves to 127.0.0.1), both on free
127.0.0.1 ports, stopped by PID.

pebble validates HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`; the tests serve those
ports themselves. Its HTTPS certificate is made at test time by `certkit` (`ca_file` trusts
it); its own issuing root is fetched from the management API (`root_pem()`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support.gateway import free_port
from tests.tls.certkit import Authority

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
START_TIMEOUT = 20.0


def ensure_pebble() -> str | None:
    """None when pebble is there (installing it when root); else why the tests must skip."""
    if os.path.exists(PEBBLE) and os.path.exists(CHALLTESTSRV):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "needs Debian's pebble package (apt-get install pebble, as root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "pebble"], env=env, check=False,
                          capture_output=True)
    if done.returncode != 0 or not os.path.exists(PEBBLE):
        return f"pebble could not be installed: {done.stderr.decode()[-300:]}"
    return None


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


class Pebble:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.acme_port, self.mgmt_port = free_port(), free_port()
        self.http_port, self.tls_port = free_port(), free_port()
        self.dns_port, self.dns_mgmt_port = free_port(), free_port()
        self.https_ca = Authority.root("pebble https test root")
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def directory(self) -> str:
        return f"https://localhost:{self.acme_port}/dir"

    @property
    def ca_file(self) -> str:
        return str(self.folder / "pebble-https-ca.pem")

    def start(self) -> Pebble:
        cert, key = self.https_ca.issue(["localhost"]).write(self.folder / "pebble-https")
        (self.folder / "pebble-https-ca.pem").write_bytes(self.https_ca.pem)
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(cert), "privateKey": str(key),
            "httpPort": self.http_port, "tlsPort": self.tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        (self.folder / "pebble.json").write_text(json.dumps(config))
        log = open(self.folder / "pebble.log", "wb")  # noqa: SIM115 - closed with the process
        dns = subprocess.Popen(
            [CHALLTESTSRV, "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "",
             "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{self.dns_mgmt_port}",
             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""], stdout=log, stderr=log)
        self.procs.append(dns)
        _wait_port(self.dns_mgmt_port, dns, "pebble-challtestsrv")
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0"}
        ca = subprocess.Popen(
            [PEBBLE, "-config", str(self.folder / "pebble.json"),
             "-dnsserver", f"127.0.0.1:{self.dns_port}"], stdout=log, stderr=log, env=env)
        self.procs.append(ca)
        _wait_port(self.acme_port, ca, "pebble")
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.procs.clear()

    def root_pem(self) -> bytes:
        """pebble's issuing root (new at every start), from its management API."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        url = f"https://localhost:{self.mgmt_port}/roots/0"
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            return bytes(resp.read())

    def log(self) -> str:
        path = self.folder / "pebble.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""
