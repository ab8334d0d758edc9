"""The admin API server: routing table, handlers, bearer-token check, dashboard sampling.

Routes are one table, `(path, method) -> handler`, built once; /openapi.json describes the same
table (tests hold the two together). Every request first passes `admin.guard.check_request`
(Host names this listener; no cross-site or form-sendable state change; no CORS preflight), so
a web page cannot drive or read a token-less loopback admin API. Every POST changes state and,
when a token is set, needs `Authorization: Bearer <token>` (compared in constant time).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import importlib.resources
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qs

from edgeward.admin.backend import AdminBackend
from edgeward.admin.cache import parse_purge
from edgeward.admin.config import AdminConfig
from edgeward.admin.guard import check_request
from edgeward.admin.openapi import OPENAPI
from edgeward.admin.series import DEFAULT_HORIZON, DEFAULT_STEP, SeriesKeeper
from edgeward.admin.wire import (
    PROBLEM_JSON_TYPE,
    AdminFactory,
    AdminRequest,
    AdminResponse,
    Limits,
    error_response,
    json_bytes,
    json_response,
    problem,
)
from edgeward.canary.controller import CanaryStateError
from edgeward.devices.openapi import DEVICES_OPENAPI
from edgeward.http.h1.server import H1Connection
from edgeward.http.listener import ListenerState
from edgeward.observe.metrics import CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, wants_openmetrics

log = logging.getLogger("edgeward.admin")

Handler = Callable[[AdminRequest], Awaitable[AdminResponse]]

METRICS_TYPE = CONTENT_TYPE
HTML_TYPE = "text/html; charset=utf-8"
CANARY_ACTIONS = ("start", "promote", "pause", "abort")
_SCRIPT_RE = re.compile(r"<script>(.*?)</script>", re.S)


def _load_dashboard() -> tuple[bytes, str]:
    """The page and a Content-Security-Policy allowing exactly its inline script and style."""
    text = importlib.resources.files("edgeward.admin").joinpath("dashboard.html").read_text()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _SCRIPT_RE.findall(text)
    )
    csp = (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
           "connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'")
    return text.encode(), csp


class AdminServer:
    """Serves the admin API for one `AdminBackend`.

    `start(host, port)` binds (port 0 picks a free one, see `port`), starts the sampler that
    feeds the dashboard series every `step` seconds; `close()` stops both and every connection.
    """

    def __init__(
        self,
        backend: AdminBackend,
        *,
        token: str | None,
        limits: Limits | None = None,
        series_step: float = DEFAULT_STEP,
        series_horizon: float = DEFAULT_HORIZON,
        hosts: tuple[str, ...] = (),
    ) -> None:
        if token is not None and not token:
            raise ValueError("token must be None (no auth) or a non-empty string, got ''")
        self.backend = backend
        self._token = token.encode() if token is not None else None
        self._limits = limits or Limits()
        self._listen_host = "127.0.0.1"  # set by start()
        self._hosts = hosts
        self.series = SeriesKeeper(horizon=series_horizon, step=series_step)
        self._dashboard, self._csp = _load_dashboard()
        self._openapi = json_bytes(OPENAPI)
        self._devices_openapi = json_bytes(DEVICES_OPENAPI)
        self._reload_lock = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._listener: ListenerState | None = None
        self.table: dict[str, dict[str, Handler]] = {
            "/healthz": {"GET": self._healthz},
            "/ready": {"GET": self._ready},
            "/metrics": {"GET": self._metrics},
            "/config": {"GET": self._get_config, "POST": self._post_config},
            "/routes": {"GET": self._routes},
            "/upstreams": {"GET": self._upstreams},
            "/ratelimits": {"GET": self._ratelimits},
            "/certificates": {"GET": self._certificates},
            "/reloads": {"GET": self._reloads},
            "/drain": {"POST": self._drain},
            "/canaries": {"GET": self._canaries},
            **{f"/canaries/{action}": {"POST": self._canary_action}
               for action in CANARY_ACTIONS},
            "/cache": {"GET": self._cache},
            "/cache/purge": {"POST": self._cache_purge},
            "/openapi.json": {"GET": self._openapi_doc},
            "/openapi/devices.json": {"GET": self._devices_openapi_doc},
            "/api/series": {"GET": self._series},
            "/": {"GET": self._dashboard_page},
        }

    @classmethod
    def from_config(
        cls, backend: AdminBackend, config: AdminConfig, environ: Mapping[str, str]
    ) -> AdminServer:
        return cls(
            backend,
            token=config.resolve_token(environ),
            limits=Limits(max_body=config.max_body, max_head=config.max_head,
                          idle_timeout=config.idle_timeout,
                          max_connections=config.max_connections),
            series_step=config.series_step,
            series_horizon=config.series_horizon,
            hosts=tuple(config.hosts),
        )

    def reconfigure(self, config: AdminConfig, environ: Mapping[str, str]
                    ) -> None:
        """Apply a reloaded `admin:` section (its listen address is the caller's to refuse):
        the token at once (the old one stops working with the next request), hosts at once,
        limits for new connections, a new series step or horizon restarts the series."""
        token = config.resolve_token(environ)
        self._token = token.encode() if token is not None else None
        self._hosts = tuple(config.hosts)
        self._limits = Limits(max_body=config.max_body, max_head=config.max_head,
                              idle_timeout=config.idle_timeout,
                              max_connections=config.max_connections)
        if self._listener is not None:
            self._listener.settings = self._limits.listener()
            factory = self._listener.factory
            assert isinstance(factory, AdminFactory)
            factory.limits = self._limits
        if (config.series_step, config.series_horizon) != (self.series.step,
                                                             self.series.horizon):
            self.series = SeriesKeeper(horizon=config.series_horizon, step=config.series_step)

    def routes(self) -> set[tuple[str, str]]:
        """Every (path, METHOD) served."""
        return {(path, method) for path, methods in self.table.items() for method in methods}

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("admin server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        if self._server is not None:
            raise RuntimeError("admin server already started")
        loop = asyncio.get_running_loop()
        self._listen_host = host
        state = self._listener = ListenerState(
            self._limits.listener(), AdminFactory(self.check, self.dispatch, self._limits))
        # The connection is a protocol by shape (asyncio calls it by name), not by class.
        self._server = await loop.create_server(
            lambda: H1Connection(state, loop),  # type: ignore[arg-type,return-value]
            host, port, reuse_port=reuse_port or None,
        )
        self._sampler = loop.create_task(self._sample_forever())

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        if self._server is not None:
            self._server.close()
            state = self._listener
            if state is not None:
                factory = state.factory
                assert isinstance(factory, AdminFactory)
                factory.cancel_all()
                for conn in list(state.connections):
                    conn.abort()  # admin requests are short and retryable
            await self._server.wait_closed()
            self._server = None

    async def _sample_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.sample_once(loop.time())
            # Aim at the next multiple of `step` so samples land on slot edges (read each
            # time: a reload may change it).
            step = self.series.step
            now = loop.time()
            await asyncio.sleep(step - (now % step) + 1e-3)

    def sample_once(self, now: float) -> None:
        try:
            self.series.add(self.backend.stats_sample(), now)
        except Exception:
            log.exception("admin: stats_sample failed; dashboard keeps its previous data")

    # -- dispatch --------------------------------------------------------------------------

    def check(self, method: str, path: str, headers: dict[str, str],
              rid: str) -> AdminResponse | None:
        """The answer for a request its head alone refuses (no such path or method, a
        cross-site or rebinding request, a missing or wrong token), else None. Called as
        soon as the head is parsed, so a refused body is never read."""
        methods = self.table.get(path)
        if methods is None:
            return error_response(404, "not_found", f"no admin endpoint at {path}", rid)
        if methods.get(method) is None:
            allow = ", ".join(sorted(methods))
            return error_response(
                405, "method_not_allowed",
                f"{method} is not allowed on {path}; allowed: {allow}", rid, (("Allow", allow),))
        refusal = check_request(method, headers, self._listen_host, self._hosts)
        if refusal is not None:
            status, code, message = refusal
            return error_response(status, code, message, rid)
        if method != "GET":
            return self._unauthorized(method, path, headers, rid)
        return None

    async def dispatch(self, request: AdminRequest) -> AdminResponse:
        rid = request.request_id
        refused = self.check(request.method, request.path, request.headers, rid)
        if refused is not None:
            return refused
        handler = self.table[request.path][request.method]
        try:
            return await handler(request)
        except Exception as exc:
            log.exception("admin: %s %s failed (request_id=%s)", request.method, request.path, rid)
            return error_response(
                500, "internal_error",
                f"{request.method} {request.path} failed: {type(exc).__name__}", rid,
            )

    def _unauthorized(self, method: str, path: str, headers: dict[str, str],
                      rid: str) -> AdminResponse | None:
        if self._token is not None:
            given = headers.get("authorization", "")
            scheme, _, credential = given.partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                credential.strip().encode("latin-1"), self._token
            )
            if not ok:
                return error_response(
                    401, "unauthorized", f"{method} {path} needs Authorization: Bearer <token>",
                    rid, (("WWW-Authenticate", 'Bearer realm="edgeward-admin"'),),
                )
        return None

    # -- handlers --------------------------------------------------------------------------

    async def _healthz(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, {"status": "ok"})

    async def _ready(self, request: AdminRequest) -> AdminResponse:
        if self.backend.ready():
            return json_response(200, {"status": "ready"})
        return error_response(503, "not_ready",
                              "the gateway is not accepting traffic (starting or draining)",
                              request.request_id)

    async def _metrics(self, request: AdminRequest) -> AdminResponse:
        openmetrics = wants_openmetrics(request.headers.get("accept", ""))
        text = self.backend.metrics_text(openmetrics)
        return AdminResponse(200, text.encode(),
                             OPENMETRICS_CONTENT_TYPE if openmetrics else METRICS_TYPE,
                             (("vary", "Accept"),))

    async def _get_config(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, self.backend.config_view())

    async def _post_config(self, request: AdminRequest) -> AdminResponse:
        rid = request.request_id
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems = [f"body is not UTF-8 text: byte {exc.start}"]
        else:
            if not text.strip():
                problems = ["body is empty: send the YAML configuration"]
            else:
                async with self._reload_lock:  # one reload at a time, in arrival order
                    problems = list(await self.backend.apply_config(text))
        if problems:
            detail = (f"configuration refused ({len(problems)} problem(s)); "
                      "the running configuration is unchanged")
            doc = problem(400, "invalid_config", detail, rid, problems=problems)
            return AdminResponse(400, json_bytes(doc), PROBLEM_JSON_TYPE)
        return json_response(200, {"applied": True})

    async def _routes(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, self.backend.routes_view())

    async def _upstreams(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, self.backend.upstreams_view())

    async def _ratelimits(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, self.backend.ratelimits_view())

    async def _certificates(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, self.backend.certificates_view())

    async def _reloads(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, self.backend.reloads_view())

    async def _drain(self, request: AdminRequest) -> AdminResponse:
        self.backend.drain()
        return json_response(202, {"draining": True})

    async def _canaries(self, request: AdminRequest) -> AdminResponse:
        views = self.backend.canaries_view()
        route = _query_route(request.query)
        if route is None:
            return json_response(200, views)
        for view in views:
            if view.get("route") == route:
                return json_response(200, view)
        return error_response(404, "canary_not_found", f"no canary on route {route!r}",
                              request.request_id)

    async def _canary_action(self, request: AdminRequest) -> AdminResponse:
        return canary_action(self.backend, request)

    async def _cache(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, self.backend.cache_view())

    async def _cache_purge(self, request: AdminRequest) -> AdminResponse:
        purges, problems = parse_purge(request.body)
        rid = request.request_id
        if problems:
            return error_response(400, "invalid_purge", "; ".join(problems), rid)
        result = await self.backend.purge_cache(purges)
        code = result.get("code")
        if code is None:
            return json_response(200, {**result, "request_id": rid})
        doc = problem(503, code, result["detail"], rid, purged=result["purged"])
        return AdminResponse(503, json_bytes(doc), PROBLEM_JSON_TYPE)

    async def _openapi_doc(self, request: AdminRequest) -> AdminResponse:
        return AdminResponse(200, self._openapi)

    async def _devices_openapi_doc(self, request: AdminRequest) -> AdminResponse:
        return AdminResponse(200, self._devices_openapi)

    async def _series(self, request: AdminRequest) -> AdminResponse:
        return json_response(200, self.series.view(asyncio.get_running_loop().time()))

    async def _dashboard_page(self, request: AdminRequest) -> AdminResponse:
        return AdminResponse(200, self._dashboard, HTML_TYPE,
                             (("Content-Security-Policy", self._csp),))


def _route_named(request: AdminRequest) -> str | None:
    """The route a canary command names: `?route=NAME`, or a JSON body `{"route": NAME}`."""
    route = _query_route(request.query)
    if route is None and request.body.strip():
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        route = body.get("route") if isinstance(body, dict) else None
    return route if isinstance(route, str) and route else None


def canary_action(backend: AdminBackend, request: AdminRequest) -> AdminResponse:
    """POST /canaries/{start,promote,pause,abort}: the command, or why it does not apply."""
    rid = request.request_id
    route = _route_named(request)
    if route is None:
        return error_response(400, "bad_request", "name the route: ?route=NAME or a JSON "
                              'body {"route": "NAME"}', rid)
    try:
        result = backend.canary_command(route, request.path.rsplit("/", 1)[1])
    except KeyError:
        return error_response(404, "canary_not_found", f"no canary on route {route!r}", rid)
    except CanaryStateError as exc:
        return error_response(409, "canary_conflict", str(exc), rid)
    return json_response(200, result)


def _query_route(query: str) -> str | None:
    values = parse_qs(query).get("route")
    return values[0] if values else None
