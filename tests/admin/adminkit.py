"""Test kit for the admin tests: an honest in-memory AdminBackend and a raw-socket client."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import yaml

from edgeward.admin.backend import endpoint_view
from edgeward.balance.endpoint import Endpoint

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, float("inf"))


class Counters:
    """Cumulative requests, errors and a latency histogram, like the gateway's metrics."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.buckets = [0] * len(BOUNDS)

    def observe(self, seconds: float, error: bool) -> None:
        self.requests += 1
        self.errors += int(error)
        for i, le in enumerate(BOUNDS):
            if seconds <= le:
                self.buckets[i] += 1

    def sample(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "buckets": [["+Inf" if le == float("inf") else le, c]
                        for le, c in zip(BOUNDS, self.buckets, strict=True)],
        }


class MemoryBackend:
    """Keeps a config, its routes and upstreams, reload history and traffic counters in memory.

    apply_config really parses the YAML and refuses what a gateway would refuse (not a mapping,
    a route naming an unknown upstream); `traffic()` plays requests through the counters.
    """

    def __init__(self) -> None:
        self.is_ready = True
        self.drained = False
        self.canaries: list[dict[str, Any]] = []  # as canaries_view() answers
        self.purges: list[tuple[str, str]] = []
        self.config: dict[str, Any] = {}
        self.reloads: list[dict[str, Any]] = []
        self.routes: dict[str, Counters] = {}
        self.upstreams: dict[str, Counters] = {}
        self.endpoints: dict[str, list[Endpoint]] = {}
        self.attempts: dict[str, Counters] = {}  # "upstream/endpoint" -> attempts
        self.apply_delay = 0.0
        self.applied_texts: list[str] = []
        self.applying = 0
        self.most_applying = 0
        self.fail_views = False

    # -- the AdminBackend protocol ---------------------------------------------------------
    def ready(self) -> bool:
        return self.is_ready and not self.drained

    def metrics_text(self, openmetrics: bool = False) -> str:
        lines = ["# TYPE edgeward_requests_total counter"]
        for name, c in sorted(self.routes.items()):
            lines.append(f'edgeward_requests_total{{route="{name}"}} {c.requests}')
        return "\n".join(lines) + ("\n# EOF\n" if openmetrics else "\n")

    def config_view(self) -> dict[str, Any]:
        view = json.loads(json.dumps(self.config))
        if "admin" in view and isinstance(view["admin"], dict) and "token" in view["admin"]:
            view["admin"]["token"] = "<redacted>"
        return view

    async def apply_config(self, text: str) -> list[str]:
        self.applying += 1
        self.most_applying = max(self.most_applying, self.applying)
        try:
            if self.apply_delay:
                await asyncio.sleep(self.apply_delay)
            return self._apply(text)
        finally:
            self.applying -= 1

    def _apply(self, text: str) -> list[str]:
        problems: list[str] = []
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problems.append(f"not YAML: {exc}")
            raw = None
        if not problems and not isinstance(raw, dict):
            problems.append("(top): expected a mapping")
        if not problems:
            assert isinstance(raw, dict)
            ups = raw.get("upstreams") or {}
            for i, route in enumerate(raw.get("routes") or []):
                if route.get("upstream") not in ups:
                    problems.append(f"routes[{i}].upstream: unknown upstream "
                                    f"{route.get('upstream')!r}")
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.reloads.insert(0, {
            "time": time.time(), "result": "refused" if problems else "applied",
            "hash": digest, "error": "; ".join(problems) or None,
        })
        if problems:
            return problems
        assert isinstance(raw, dict)
        self.applied_texts.append(text)
        self.config = raw
        for name, up in (raw.get("upstreams") or {}).items():
            self.upstreams.setdefault(name, Counters())
            self.endpoints[name] = [
                Endpoint(*t.rsplit(":", 1)[0:1], int(t.rsplit(":", 1)[1]))
                for t in up.get("targets", [])
            ]
        for route in raw.get("routes") or []:
            self.routes.setdefault(route["name"], Counters())
        return []

    def routes_view(self) -> list[dict[str, Any]]:
        if self.fail_views:
            raise RuntimeError("registry unavailable: secret=hunter2")
        return [dict(r) for r in self.config.get("routes") or []]

    def upstreams_view(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "endpoints": [
                endpoint_view(ep, breaker="open" if ep.ejected else "closed", ewma_ms=12.5)
                for ep in eps]}
            for name, eps in sorted(self.endpoints.items())
        ]

    def ratelimits_view(self) -> list[dict[str, Any]]:
        return [{"route": r["name"], **r["rate_limit"]}
                for r in self.config.get("routes") or [] if "rate_limit" in r]

    def reloads_view(self) -> list[dict[str, Any]]:
        return list(self.reloads)

    def cache_view(self) -> dict[str, Any]:
        return {"entries": 0, "size": 0}

    async def purge_cache(self, purges: list[tuple[str, str]]) -> dict[str, Any]:
        self.purges.extend(purges)
        return {"purged": 0, "id": None}

    def certificates_view(self) -> list[dict[str, Any]]:
        return [{"name": "a.test", "expires": 1.0e9, "seconds_left": 86400.0}]

    def canaries_view(self) -> list[dict[str, Any]]:
        return self.canaries

    def canary_command(self, route: str, action: str) -> dict[str, Any]:
        raise KeyError(route)

    def drain(self) -> None:
        self.drained = True

    def stats_sample(self) -> dict[str, Any]:
        return {
            "routes": {n: c.sample() for n, c in self.routes.items()},
            "upstreams": {n: c.sample() for n, c in self.upstreams.items()},
            "endpoints": {n: {"requests": c.requests, "errors": c.errors}
                          for n, c in self.attempts.items()},
        }

    # -- test helpers ----------------------------------------------------------------------
    def traffic(self, route: str, upstream: str, n: int, *, errors: int = 0,
                seconds: float = 0.02) -> None:
        for i in range(n):
            self.routes[route].observe(seconds, i < errors)
            self.upstreams[upstream].observe(seconds, i < errors)

    def attempt(self, upstream: str, endpoint: str, n: int, *, errors: int = 0) -> None:
        """`n` attempts sent to one endpoint, the first `errors` of them failed."""
        counts = self.attempts.setdefault(f"{upstream}/{endpoint}", Counters())
        for i in range(n):
            counts.observe(0.01, i < errors)


CONFIG = """
upstreams:
  orders:
    targets: [127.0.0.1:8001, 127.0.0.1:8002]
  users:
    targets: [127.0.0.1:8003]
routes:
  - name: orders_api
    match: {path_prefix: /orders}
    upstream: orders
    rate_limit: {rate: 100/s, burst: 50}
  - name: users_api
    match: {path_prefix: /users}
    upstream: users
"""


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        """The JSON body: an answer (`application/json`) or, from status 400 on, a problem
        document (RFC 9457) with the gateway's members."""
        ctype = self.headers["content-type"]
        if self.status < 400:
            assert ctype.startswith("application/json"), self.headers
            return json.loads(self.body)
        assert ctype == "application/problem+json", self.headers
        assert "date" in self.headers, self.headers
        doc = json.loads(self.body)
        assert doc["status"] == self.status and doc["detail"], doc
        assert doc["type"] == "urn:edgeward:problem:" + doc["code"], doc
        return doc


class Client:
    """One keep-alive connection, raw bytes on the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> Response:
        await self.send_raw(encode_request(method, path, body, headers))
        return await self.read_response()

    async def read_response(self) -> Response:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        body = await asyncio.wait_for(self.reader.readexactly(length), 5)
        return Response(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def encode_request(method: str, path: str, body: bytes = b"",
                   headers: dict[str, str] | None = None) -> bytes:
    headers = dict(headers or {})
    if method == "POST" and not any(n.lower() == "content-type" for n in headers):
        headers["Content-Type"] = "application/yaml"  # as the admin API asks (admin/guard.py)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


GOOD_SMALL = "upstreams: {b: {targets: [127.0.0.1:9]}}\nroutes: [{name: b, upstream: b}]\n"
