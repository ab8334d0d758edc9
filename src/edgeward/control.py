"""The worker's control side: admin backend, cluster watchers, telemetry upkeep.

`Control` implements the admin API's `AdminBackend` over the running worker, keeps one
discovery watcher and one health checker per live cluster (started when a snapshot brings a
cluster in, stopped when a reload drops it), and once a second moves breaker and outlier
events into metrics and, with several workers, publishes this worker's metrics snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from edgeward.balance.endpoint import Endpoint, clamp_weight
from edgeward.balance.peak_ewma import PeakEwmaBalancer
from edgeward.cache.runtime import PurgeResult
from edgeward.canary.controller import Decision
from edgeward.canary.runner import CanaryRunner
from edgeward.compose import cache_runtime, canary_book, filter_events
from edgeward.config.schema import GatewayConfig
from edgeward.config.sources import ConfigSource, EtcdSource
from edgeward.discovery.dns import DnsResolverWatcher
from edgeward.discovery.etcd import EtcdRegistryWatcher, Member
from edgeward.discovery.health import ActiveHealthChecker
from edgeward.discovery.health import Transition as HealthTransition
from edgeward.followers import Followers
from edgeward.gateway import Worker
from edgeward.http.h2.limits import REASONS as H2_REASONS
from edgeward.observe.exchange import SnapshotExchange
from edgeward.observe.metrics import Gauge, render_snapshot
from edgeward.observe.process import ProcessWatch
from edgeward.proxy.cluster import Cluster
from edgeward.proxy.snapshot import Snapshot
from edgeward.proxy.telemetry import Telemetry
from edgeward.redact import redact_config, redact_text
from edgeward.runtime import ConfigRuntime
from edgeward.tls.metrics import expiry_gauge, export_expiry, soonest

log = logging.getLogger("edgeward.control")

UPKEEP_INTERVAL = 1.0


class ClusterWatch:
    """Discovery and active health checking of one cluster object."""

    def __init__(self, cluster: Cluster, cfg: GatewayConfig, telemetry: Telemetry) -> None:
        self.cluster = cluster
        self.telemetry = telemetry
        self.checker: ActiveHealthChecker | None = None
        self.discovery: EtcdRegistryWatcher | DnsResolverWatcher | None = None
        up = cluster.config
        if up.health is not None:
            self.checker = ActiveHealthChecker(
                lambda: cluster.endpoints, up.health, self._on_health, name=cluster.name,
                initial_healthy=up.discovery is None,
                tls=(cluster.tls.context, cluster.tls.server_name) if cluster.tls else None)
        d = up.discovery
        if d is not None and d.etcd is not None and cfg.etcd is not None:
            self.discovery = EtcdRegistryWatcher(cfg.etcd.endpoints, d.etcd, self._on_members,
                                                 timeout=cfg.etcd.timeout,
                                                 access=cfg.etcd.access)
        elif d is not None and d.dns is not None:
            self.discovery = DnsResolverWatcher(
                d.dns, record_type=d.dns_type, port=d.port, resolver=d.resolver,
                min_refresh=d.dns_refresh, on_update=self._on_members)

    async def start(self) -> None:
        # Every endpoint has a sample from the start (its health as the cluster holds it:
        # healthy until a check fails, or unhealthy until one passes for registry members).
        for e in self.cluster.endpoints:
            self._set_health(e)
        if self.checker is not None:
            self.checker.start()
        if isinstance(self.discovery, EtcdRegistryWatcher):
            try:
                await self.discovery.start()
            except Exception as exc:  # keeps retrying in the background
                log.error("etcd discovery for %s: %s", self.cluster.name, exc)
        elif self.discovery is not None:
            self.discovery.start()

    async def stop(self) -> None:
        if self.checker is not None:
            await self.checker.stop()
        if isinstance(self.discovery, EtcdRegistryWatcher):
            await self.discovery.close()
        elif self.discovery is not None:
            await self.discovery.stop()

    def _on_members(self, members: Sequence[Member]) -> None:
        cluster = self.cluster
        fresh = [Endpoint(m[0], m[1], clamp_weight(m[2]), *m[3:]) for m in members]
        known = {e.key for e in cluster.endpoints}
        cluster.set_endpoints(fresh)
        if self.checker is not None:
            # Registry endpoints take traffic only once their health checks pass.
            self.checker.set_endpoints(cluster.endpoints, initial_healthy=False)
        cluster.availability_changed()
        for e in cluster.endpoints:
            if e.key not in known:
                log.info("upstream %s: endpoint %s joined", cluster.name, e.key)
                self._set_health(e)

    def _set_health(self, endpoint: Endpoint) -> None:
        self.telemetry.metrics.endpoint_healthy(self.cluster.name, endpoint.key).set(
            1.0 if endpoint.healthy else 0.0)

    def _on_health(self, endpoint: Endpoint, transition: HealthTransition) -> None:
        self.cluster.availability_changed()
        healthy = transition is HealthTransition.BECAME_HEALTHY
        self.telemetry.metrics.endpoint_healthy(self.cluster.name, endpoint.key).set(
            1.0 if healthy else 0.0)


class Control:
    """AdminBackend for one worker, plus the upkeep of watchers and telemetry."""

    def __init__(self, worker: Worker, runtime: ConfigRuntime, telemetry: Telemetry, *,
                 worker_id: int, workers: int, metrics_dir: str | None) -> None:
        self.worker = worker
        self.runtime = runtime
        self.telemetry = telemetry
        self.watches: dict[int, ClusterWatch] = {}
        self.exchange = (SnapshotExchange(metrics_dir, worker_id)
                         if metrics_dir is not None and workers > 1 else None)
        self._upkeep: asyncio.Task[None] | None = None
        self._apply_lock = asyncio.Lock()
        self._reloading: set[asyncio.Task[None]] = set()
        self.source: ConfigSource | None = None  # set when the config comes from a watched source
        self.workers = workers
        self.worker_id = worker_id
        self.followers = Followers(runtime, worker_id, workers)
        # Seconds left per served certificate name, per TLS listener (listening.py), for
        # edgeward_tls_certificate_expiry_seconds; None: no TLS listener.
        self.tls_expiry: Callable[[], list[dict[str, float]]] | None = None
        self._expiry_gauge: Gauge | None = None
        metrics = telemetry.metrics
        metrics.active_connections.set_function(lambda: float(worker.connection_count()))
        metrics.active_requests.set_function(self._active_requests)
        metrics.underscore_headers.set_function(lambda: float(worker.underscore_headers()))
        for reason in H2_REASONS:
            metrics.h2_glitches.labels(reason).set_function(_h2_closed(worker, reason))
        metrics.config_loaded(True, runtime.hash, time.time())
        self.process = ProcessWatch(metrics, worker.refused_connections)
        self.canaries = CanaryRunner(lambda: canary_book(runtime.registry), self._on_canary,
                                     lambda: runtime.config.etcd)
        runtime.listeners.append(self._on_reload)

    async def start(self) -> None:
        if self.exchange is not None:
            try:
                self.exchange.start()
            except OSError as exc:
                log.error("metrics of other workers not shared: %s", exc)
                self.exchange = None
        await self._sync_watches(self.runtime.snapshot)
        await self.followers.sync_consumers()
        self.canaries.start()
        await self.followers.sync_fleet()
        self._upkeep = asyncio.get_running_loop().create_task(self._run_upkeep())

    async def stop(self) -> None:
        await self.canaries.stop()
        await self.followers.close()
        if self._upkeep is not None:
            self._upkeep.cancel()
        for watch in list(self.watches.values()):
            await watch.stop()
        self.watches.clear()

    # upkeep ---------------------------------------------------------------------------------
    async def _run_upkeep(self) -> None:
        while True:
            await asyncio.sleep(UPKEEP_INTERVAL)
            try:
                self.process.tick(self.worker.loop.time())
                self.telemetry.drain_cluster_events(self.worker.snapshot)
                if self.exchange is not None:
                    self._filter_counts()
                    self.exchange.publish(self.telemetry.metrics.registry)
            except Exception:
                log.exception("telemetry upkeep")

    def _active_requests(self) -> float:
        return float(sum(c.active_requests for c in self.worker.snapshot.clusters.values()))

    def on_source_change(self, text: str) -> None:
        """The watched file or etcd key changed: apply it (refusals are logged and counted),
        after any reload already under way."""
        task = asyncio.get_running_loop().create_task(self._apply_source(text))
        self._reloading.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._reloading.discard)

    async def _apply_source(self, text: str) -> None:
        async with self._apply_lock:
            if await self.runtime.apply(text):
                self.telemetry.metrics.config_loaded(False, None, time.time())

    def _on_reload(self, old: GatewayConfig, cfg: GatewayConfig) -> None:
        self.telemetry.metrics.config_loaded(True, self.runtime.hash, time.time())
        for cluster in self.runtime.snapshot.clusters.values():
            cluster.on_attempt = self.telemetry.attempt
        asyncio.get_running_loop().create_task(self._sync_watches(self.runtime.snapshot))
        asyncio.get_running_loop().create_task(self.followers.sync_consumers())
        asyncio.get_running_loop().create_task(self.followers.sync_fleet())

    async def _sync_watches(self, snapshot: Snapshot) -> None:
        live = {id(c): c for c in snapshot.clusters.values()}
        for key in [k for k in self.watches if k not in live]:
            await self.watches.pop(key).stop()
        for key, cluster in live.items():
            cluster.on_attempt = self.telemetry.attempt
            if key not in self.watches:
                watch = ClusterWatch(cluster, self.runtime.config, self.telemetry)
                self.watches[key] = watch
                await watch.start()

    # AdminBackend ---------------------------------------------------------------------------
    def ready(self) -> bool:
        return not self.worker.state.draining and bool(self.worker.servers)

    def _filter_counts(self) -> None:
        metrics = self.telemetry.metrics
        book = canary_book(self.runtime.registry)
        metrics.canary_counts(book.weights(), book.totals)
        metrics.filter_counts(filter_events(self.runtime.registry).counts)
        metrics.websocket_counts(self.worker.factory.websocket)
        registry = self.runtime.registry
        metrics.device_counts(registry.of_kind("device_store"), registry.of_kind("mqtt_bridge"),
                              registry.of_kind("device_sessions"))
        self._tls_expiry()

    def _tls_expiry(self) -> None:
        if self.tls_expiry is None:
            return
        expiries = self.tls_expiry()
        if not expiries:
            return
        if self._expiry_gauge is None:
            self._expiry_gauge = expiry_gauge(self.telemetry.metrics.registry)
        export_expiry(self._expiry_gauge, *expiries)

    def metrics_text(self, openmetrics: bool = False) -> str:
        self._filter_counts()
        registry = self.telemetry.metrics.registry
        if self.exchange is not None:
            return self.exchange.render(registry, openmetrics=openmetrics)
        return render_snapshot(registry.snapshot(), openmetrics)

    def config_view(self) -> dict[str, Any]:
        from edgeward.config.text import safe_load

        raw = safe_load(self.runtime.text) or {}
        redacted: dict[str, Any] = redact_config(raw)
        return redacted

    async def apply_config(self, text: str) -> list[str]:
        """Apply here at once, then persist to the watched source (file or etcd) so that the
        other workers, other gateways on the same source and the next start all get it."""
        async with self._apply_lock:
            problems = await self.runtime.apply(text, "POST /config")
            if problems:
                self.telemetry.metrics.config_loaded(False, None, time.time())
                return problems
            if self.source is None:
                if self.workers > 1:
                    log.warning("POST /config applied in worker %d only: no watched source "
                                "to share it through", self.worker_id)
                return []
            if self.workers == 1 and not isinstance(self.source, EtcdSource):
                # One process on a file: nothing to share it with, and writing the file
                # would race with whoever edits it. etcd is the fleet's shared store, and
                # several workers need the file to converge, so those are written.
                return []
            try:
                await self.source.store(text)
            except Exception as exc:
                reason = redact_text(f"applied in this process but not persisted to "
                                     f"{self.runtime.source}: {exc}")
                log.error("%s", reason)
                if self.workers > 1:
                    return [reason]
            return []

    def cache_view(self) -> dict[str, Any]:
        return cache_runtime(self.runtime.registry).view()

    async def purge_cache(self, purges: list[tuple[str, str]]) -> dict[str, Any]:
        return _purge_answer(await cache_runtime(self.runtime.registry).purge(purges))

    def routes_view(self) -> list[dict[str, Any]]:
        cfg = self.runtime.config
        # The chains the worker runs (the snapshot of this config), in run order.
        described = {r.name: r.described for r in self.runtime.snapshot.routes}
        out = []
        for i, rc in enumerate(cfg.routes):
            out.append({
                "name": cfg.route_name(i),
                "match": _plain(rc.match),
                "upstream": rc.upstream,
                "split": [_plain(e) for e in rc.split] if rc.split else None,
                "timeout": rc.timeout,
                "rate_limit": _plain(rc.rate_limit) if rc.rate_limit else None,
                "max_concurrent": rc.max_concurrent,
                "retries": _plain(rc.retries) if rc.retries else None,
                "redirect": _plain(rc.redirect) if rc.redirect else None,
                "respond": _respond_view(rc.respond) if rc.respond else None,
                "devices": _plain(rc.devices) if rc.devices else None,
                "filters": [{"name": n, "kind": k, "order": o}
                            for n, k, o in described.get(cfg.route_name(i), ())],
            })
        return out

    def upstreams_view(self) -> list[dict[str, Any]]:
        now = self.worker.loop.time()
        out = []
        for cluster in self.worker.snapshot.clusters.values():
            eps = []
            for e in cluster.endpoints:
                breaker = cluster.breaker_for(e)
                eps.append({
                    "address": e.key, "weight": e.weight, "healthy": e.healthy,
                    "health_checked": cluster.config.health is not None,
                    "ejected": e.ejected, "in_flight": e.active,
                    "breaker": breaker.state(now) if breaker is not None else None,
                    "ewma_ms": _ewma_ms(cluster, e, now),
                    "idle_connections": cluster.pools[e].idle_count() if e in cluster.pools else 0,
                })
            out.append({"name": cluster.name, "balance": cluster.config.balance,
                        "active_requests": cluster.active_requests,
                        "retries": cluster.retries, "endpoints": eps,
                        "rollout_latency_ratio": cluster.rollout_ratio})
        return out

    def ratelimits_view(self) -> list[dict[str, Any]]:
        out = []
        for route in self.worker.snapshot.routes:
            if route.limiter is None and route.concurrency is None:
                continue
            entry: dict[str, Any] = {"route": route.name}
            if route.limiter is not None:
                entry["scope"] = "local" if route.limiter.local else "global"
                entry["stats"] = route.limiter.stats.as_dict()
                entry["keys"] = route.limiter.table_stats()
            if route.concurrency is not None:
                entry["concurrency"] = repr(route.concurrency)
            out.append(entry)
        return out

    def certificates_view(self) -> list[dict[str, Any]]:
        now = time.time()
        left = soonest(*self.tls_expiry()) if self.tls_expiry is not None else {}
        return [{"name": name, "expires": now + seconds, "seconds_left": seconds}
                for name, seconds in sorted(left.items(), key=lambda item: item[1])]

    def reloads_view(self) -> list[dict[str, Any]]:
        return [r.as_dict() | {"error": "; ".join(r.error) or None}
                for r in reversed(self.runtime.reloads)]

    def _on_canary(self, route: str, decision: Decision) -> None:
        book = canary_book(self.runtime.registry)
        self.telemetry.metrics.canary_counts({route: decision.weight}, book.totals)

    def canaries_view(self) -> list[dict[str, Any]]:
        now = time.monotonic()  # the clock canaries run on (compose, canary/runner.py)
        return [run.view(now) for run in canary_book(self.runtime.registry).runs.values()]

    def canary_command(self, route: str, action: str) -> dict[str, Any]:
        now = time.monotonic()
        decision = self.canaries.command(route, action, now)
        run = canary_book(self.runtime.registry).runs[route]
        return {"decision": decision.as_dict(), "canary": run.view(now)}

    def drain(self) -> None:
        asyncio.get_running_loop().create_task(self.worker.drain())

    def stats_sample(self) -> dict[str, Any]:
        return _stats(self.telemetry)


def _stats(telemetry: Telemetry) -> dict[str, Any]:
    """Cumulative per-route and per-upstream request/error counts and latency buckets."""
    routes: dict[str, dict[str, Any]] = {}
    upstreams: dict[str, dict[str, Any]] = {}
    for name, rm in list(telemetry.route_metrics_items()):
        hist = rm.duration
        total = 0
        buckets: list[list[Any]] = []
        for le, count in zip([*hist.bounds, "+Inf"], hist.counts, strict=False):
            total += count
            buckets.append([le, total])
        entry = routes.setdefault(name or "(none)", {"requests": 0, "errors": 0,
                                                     "buckets": buckets})
        for (upstream, status), child in list(rm._requests.items()):
            value = int(child.value)
            error = value if status >= 500 else 0
            entry["requests"] += value
            entry["errors"] += error
            if upstream:
                up = upstreams.setdefault(upstream, {"requests": 0, "errors": 0, "buckets": []})
                up["requests"] += value
                up["errors"] += error
    for name, hist in telemetry.upstream_histograms():
        total = 0
        cumulative: list[list[Any]] = []
        for le, count in zip([*hist.bounds, "+Inf"], hist.counts, strict=False):
            total += count
            cumulative.append([le, total])
        up = upstreams.setdefault(name, {"requests": 0, "errors": 0, "buckets": []})
        up["buckets"] = cumulative
    return {"routes": routes, "upstreams": upstreams, "endpoints": _endpoint_stats(telemetry)}


def _endpoint_stats(telemetry: Telemetry) -> dict[str, dict[str, Any]]:
    """Cumulative attempts and failed attempts per endpoint, as "upstream/endpoint": the
    passive figures that show a failing endpoint of an upstream without health checks."""
    out: dict[str, dict[str, Any]] = {}
    for (upstream, endpoint, outcome), child in telemetry.attempt_counts():
        entry = out.setdefault(f"{upstream}/{endpoint}", {"requests": 0, "errors": 0})
        value = int(child.value)
        entry["requests"] += value
        if outcome != "success":
            entry["errors"] += value
    return out


def _respond_view(respond: Any) -> dict[str, Any]:
    """A respond config without its body (a file's bytes or a long text): its size."""
    view: dict[str, Any] = _plain(respond)
    body = view.pop("body", None)
    view["body_bytes"] = len(body.encode()) if body else None
    return view


def _ewma_ms(cluster: Cluster, endpoint: Endpoint, now: float) -> float | None:
    balancer = cluster.balancer
    if not isinstance(balancer, PeakEwmaBalancer):
        return None
    state = balancer.state(endpoint)
    if state is None:
        return None
    return round(state.cost_at(now, cluster.config.ewma_decay) * 1000, 3)


def _plain(obj: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _h2_closed(worker: Worker, reason: str) -> Callable[[], float]:
    """Reads edgeward_h2_glitches_total{reason} from the worker's listeners."""
    return lambda: float(worker.h2_closed(reason))


def _purge_answer(done: PurgeResult) -> dict[str, Any]:
    """POST /cache/purge's answer (edgeward.admin.backend.Backend.purge_cache)."""
    if done.error is not None:
        return {"code": "purge_not_published", "purged": done.removed,
                "detail": redact_text(f"purged in this worker but not published to "
                                      f"the fleet: {done.error}")}
    if done.shared_error is not None:
        return {"code": "purge_not_shared", "purged": done.removed,
                "detail": redact_text(f"purged in this worker but not in the shared "
                                      f"cache tier: {done.shared_error}")}
    return {"purged": done.removed, "id": done.stream_id, "shared_purged": done.shared_removed}
