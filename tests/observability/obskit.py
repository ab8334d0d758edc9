"""Helpers shared by the observability end-to-end tests: a gateway with an admin listener,
blocking HTTP calls over fresh or kept connections, and a Prometheus scrape parsed by the
independent reader in tests/observe/promtext.py."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tests.observe.promtext import parse_exposition
from tests.support.gateway import GatewayProcess, free_port

T = TypeVar("T")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(port: int, method: str, path: str, body: bytes | str | None = None,
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> Reply:
    """One request on a fresh connection (so with several workers the kernel spreads them)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def get(port: int, path: str, headers: dict[str, str] | None = None) -> Reply:
    return call(port, "GET", path, headers=headers)


def wait_until(probe: Callable[[], T | None], timeout: float = 10.0, every: float = 0.05,
               what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except OSError:
            last = None
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class AdminGateway:
    """A real `edgeward run` with `admin:` on its own free port.

    `text` may use {listen} and {admin} (HOST:PORT of the admin listener)."""

    def __init__(self, text: str, *, workers: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.admin_port = free_port()
        self.gw = GatewayProcess.config(
            text.replace("{admin}", f"127.0.0.1:{self.admin_port}"), workers=workers, env=env)

    def __enter__(self) -> AdminGateway:
        self.gw.start()
        try:
            wait_until(lambda: get(self.admin_port, "/healthz").status == 200, what="admin up")
        except BaseException:
            self.gw.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.gw.__exit__(*exc)

    @property
    def port(self) -> int:
        return self.gw.port

    def admin(self, method: str, path: str, body: bytes | str | None = None,
              headers: dict[str, str] | None = None) -> Reply:
        """A call to the admin API; a POST says `Content-Type: application/yaml` unless
        `headers` give one (a state change needs a non-form type, see admin/guard.py)."""
        headers = dict(headers or {})
        if method == "POST" and not any(n.lower() == "content-type" for n in headers):
            headers["content-type"] = "application/yaml"
        return call(self.admin_port, method, path, body, headers)

    def scrape(self) -> Samples:
        reply = self.admin("GET", "/metrics")
        assert reply.status == 200, reply
        assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
        return parse_exposition(reply.body.decode())[2]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample `name{labels}`, 0 when absent (Prometheus: no series = nothing counted)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}
