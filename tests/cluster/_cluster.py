"""Helpers for the cluster end-to-end tests and benchmarks: a real redis-server, gateway
processes serving a config from a file or an etcd key, a small keep-alive HTTP client and
a flood driver that spreads traffic over several gateways.

Everything listens on 127.0.0.1 free ports; every process started here is stopped by PID.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.gateway import GatewayProcess, free_port
from tests.support.redis_server import RedisServer

REDIS_SERVER = "/usr/bin/redis-server"
CLIENT_TIMEOUT = 2.0   # no request may take longer than this (the brief's "no request hangs")




@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


# gateways -----------------------------------------------------------------------------------
def gateway_from_file(text: str) -> GatewayProcess:
    """`edgeward run -c FILE`; `{listen}` and `{admin}` in text become free ports."""
    return GatewayProcess.config(text.replace("{admin}", f"127.0.0.1:{free_port()}"))


def gateway_from_etcd(etcd_url: str, key: str, port: int, workdir: Path) -> GatewayProcess:
    return GatewayProcess(["run", "-c", f"etcd://{etcd_url}{key}"], port, workdir)


@contextmanager
def gateways(texts: list[str]) -> Iterator[list[GatewayProcess]]:
    """Start one gateway per config text, all stopped (SIGTERM, by PID) at the end."""
    started: list[GatewayProcess] = []
    try:
        for text in texts:
            started.append(gateway_from_file(text).start())
        yield started
    finally:
        for gw in started:
            died = gw.proc is not None and gw.proc.poll() is not None
            code = gw.stop()
            if died or code != 0:   # shown by pytest when the test fails
                print(f"gateway {gw.port} exited {code}:\n{gw.stderr_text()[-4000:]}")


def admin_port(gw: GatewayProcess) -> int:
    text = (gw.workdir / "edgeward.yaml").read_text()
    m = re.search(r"admin:\s*127\.0\.0\.1:(\d+)", text)
    assert m, "config has no admin listener"
    return int(m.group(1))


# a blocking HTTP helper (admin API, probes) ---------------------------------------------------
def http_get(port: int, path: str, timeout: float = CLIENT_TIMEOUT) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_post(port: int, path: str, body: str, timeout: float = CLIENT_TIMEOUT
              ) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body.encode(),
                     headers={"content-type": "application/yaml"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_json(port: int, path: str) -> object:
    status, body = http_get(port, path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def metric_value(port: int, name: str, labels: str = "") -> float:
    """A sample of the admin /metrics page, 0 when absent."""
    _, body = http_get(port, "/metrics")
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in body.decode().splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def wait_until(predicate: object, timeout: float, step: float = 0.02) -> float:
    """Call predicate() until true; the seconds it took. AssertionError on timeout."""
    assert callable(predicate)
    start = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except OSError:
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)


# an asyncio keep-alive client ---------------------------------------------------------------
class KeepAliveClient:
    """One HTTP/1.1 keep-alive connection; GETs with a hard per-request deadline."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        return await asyncio.wait_for(self._get(path), CLIENT_TIMEOUT)

    async def _get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: cluster.test\r\n\r\n".encode())
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.close()
            raise ConnectionResetError("connection closed before a response") from None
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lname = name.strip().lower()
            if lname == "content-length":
                length = int(value)
            elif lname == "connection" and "close" in value.lower():
                close = True
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class FloodResult:
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    per_port: Counter[int] = field(default_factory=Counter)   # 200s per gateway port
    seconds: float = 0.0

    @property
    def admitted(self) -> int:
        return self.statuses[200]

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)


async def _flood(ports: list[int], path: str, seconds: float, per_port: int) -> FloodResult:
    result = FloodResult()
    start = time.monotonic()
    until = start + seconds

    async def one(port: int) -> None:
        client = KeepAliveClient(port)
        try:
            while time.monotonic() < until:
                try:
                    status, body = await client.get(path)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    result.errors.append(f"{port}: {type(exc).__name__}: {exc}")
                    client.close()
                    continue
                result.statuses[status] += 1
                if status == 200:
                    result.per_port[port] += 1
                elif body[:1] == b"{":
                    result.codes[str(json.loads(body).get("code"))] += 1
        finally:
            client.close()

    await asyncio.gather(*(one(p) for p in ports for _ in range(per_port)))
    # The span over which answers were decided: from the first request to the last answer
    # (requests sent just before the deadline are answered after it). Limits are checked
    # against this, not the nominal window, so a slow machine cannot fail a correct limiter.
    result.seconds = time.monotonic() - start
    return result


def flood(ports: list[int], path: str, seconds: float, per_port: int = 2) -> FloodResult:
    """Keep `per_port` keep-alive connections per gateway busy with GETs for `seconds`.
    Only requests sent before the deadline are made; their answers are all counted."""
    return asyncio.run(_flood(ports, path, seconds, per_port))


def wait_admin(port: int, timeout: float = 10.0) -> None:
    """The listener is bound before the worker starts; the admin API comes up after.
    Wait until it answers, and until the worker serves (admin starts after the worker)."""
    wait_until(lambda: http_get(port, "/healthz")[0] == 200, timeout=timeout)
