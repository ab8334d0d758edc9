"""The shell of the worker's canaries: ticks each run's controller, runs the webhooks, and
carries out the admin API's commands.

Each canary is ticked several times per step (every step_interval / 4, between 20 ms and
1 s), so a regression found mid-step rolls back within a quarter step of the evidence, and a
step passes within a quarter step of its end. Webhooks are POSTs of the decision as JSON
through the gateway's own subrequest client (proxy/subrequest.py) to a named upstream:
`pre_promotion` is awaited (a non-2xx answer, an error or its timeout holds the canary at
max_weight for another step); `post_rollback` is sent and not waited on.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from edgeward.canary.config import WebhookConfig
from edgeward.canary.controller import (
    LOOKS_PER_STEP,
    CanaryController,
    CanaryStateError,
    Decision,
    Phase,
)
from edgeward.canary.fleet import FleetCanary, member_id
from edgeward.canary.run import CanaryBook, CanaryRun
from edgeward.discovery.etcd import EtcdConfig
from edgeward.proxy.cluster import Cluster
from edgeward.proxy.subrequest import SubrequestError, fetch, make_head

log = logging.getLogger("edgeward.canary")

# Ticks per step, and their bounds: 20 ms keeps an idle gateway's loop quiet even with a
# 50 ms step in tests; 1 s bounds the reaction time of a minute-long step.
TICKS_PER_STEP: Final = LOOKS_PER_STEP
MIN_TICK: Final = 0.02
MAX_TICK: Final = 1.0

ACTIONS: Final = ("start", "promote", "pause", "abort")


class CanaryRunner:
    def __init__(self, book: Callable[[], CanaryBook],
                 on_decision: Callable[[str, Decision], None],
                 etcd: Callable[[], EtcdConfig | None] = lambda: None) -> None:
        self.book = book
        self.etcd = etcd
        self.member = member_id()
        # Fleet canaries this worker takes part in, by route, with the run they serve.
        self.fleets: dict[str, FleetCanary] = {}
        self.on_decision = on_decision
        self._task: asyncio.Task[None] | None = None
        self._hooks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        for task in [self._task, *self._hooks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._task, *self._hooks] if t is not None),
                             return_exceptions=True)
        self._task = None
        for fleet in self.fleets.values():
            await fleet.close()
        self.fleets.clear()

    def tick_interval(self) -> float:
        runs = self.book().runs.values()
        if not runs:
            return MAX_TICK
        step = min(r.config.step_interval for r in runs) / TICKS_PER_STEP
        return max(MIN_TICK, min(MAX_TICK, step))

    async def _run(self) -> None:
        while True:
            runs = self.book().runs
            for route in [r for r in self.fleets if r not in runs]:
                await self.fleets.pop(route).close()     # the route left the config
            for run in list(runs.values()):
                try:
                    if run.config.fleet is not None:
                        await self.fleet_tick(run)
                    else:
                        await self.tick(run, time.monotonic())
                except Exception as exc:
                    log.error("canary %s: tick failed: %s", run.route, exc,
                              exc_info=not isinstance(exc, ConnectionError))
            await asyncio.sleep(self.tick_interval())

    async def tick(self, run: CanaryRun, now: float) -> None:
        decision = run.tick(now)
        self._breaker_rule(run)
        if decision is None:
            return
        self._decided(run, decision)
        if decision.kind == "confirm":
            ok, reason = await self._pre_promotion(run, decision)
            now = time.monotonic()
            self._decided(run, run.apply(run.controller.confirm(now, ok, reason)))

    def _breaker_rule(self, run: CanaryRun) -> None:
        """Hand the canary arm's latency against the stable arm's to its upstream's breakers
        (`circuit_breaker.rollout_failure_rate`); a window too young to say keeps the last
        ratio, and the end of the rollout restores the plain failure rate."""
        cluster = self.book().clusters.get(run.config.canary)
        if not isinstance(cluster, Cluster):
            return
        if not run.rolling_out():
            cluster.set_rollout_ratio(None)
            return
        ratio = run.latency_ratio()
        if ratio is not None:
            cluster.set_rollout_ratio(ratio)

    async def _fleet(self, run: CanaryRun) -> FleetCanary | None:
        """This worker's part in the run's fleet canary (a new run or a new etcd config gets
        a new one)."""
        etcd = self.etcd()
        fleet = self.fleets.get(run.route)
        if fleet is not None and fleet.run is run and fleet.etcd == etcd:
            return fleet
        if fleet is not None:
            await fleet.close()
            del self.fleets[run.route]
        if etcd is None:
            return None
        fleet = self.fleets[run.route] = FleetCanary(run, etcd, self.member)
        await fleet.start()
        return fleet

    async def fleet_tick(self, run: CanaryRun) -> None:
        fleet = await self._fleet(run)
        if fleet is None:
            return
        done = await fleet.tick(time.time())
        self._breaker_rule(run)
        if done is not None:
            self._decided(run, done[0])
        decision = done[0] if done is not None else None
        if decision is None and fleet.leader and run.controller.phase is Phase.CONFIRMING:
            # A leader that took over while a promotion awaited its check asks again.
            c = run.controller
            decision = Decision(kind="confirm", at=time.time(), phase=c.phase,
                                weight_before=c.weight, weight=c.weight,
                                reason="promotion pending (asked again by a new leader)",
                                step=c.step, new_window=False)
        if decision is not None and decision.kind == "confirm":
            ok, reason = await self._pre_promotion(run, decision)
            done = await fleet.decide(time.time(),
                                      lambda c, s, k, now: c.confirm(now, ok, reason))
            if done is not None:
                self._decided(run, done[0])

    def _decided(self, run: CanaryRun, decision: Decision) -> None:
        self.on_decision(run.route, decision)
        hook = run.config.post_rollback
        if hook is not None and decision.kind in ("rollback", "abort"):
            task = asyncio.get_running_loop().create_task(self._notify(run, hook, decision))
            self._hooks.add(task)
            task.add_done_callback(self._hooks.discard)

    def command(self, route: str, action: str, now: float) -> Decision:
        """A person's command; KeyError for no such canary, CanaryStateError when the
        command does not apply now, ValueError for an unknown action. A fleet canary's
        command is checked against the state this worker holds and written to etcd (any
        gateway may write one, with a compare on the state's revision); every gateway then
        applies it from its watch."""
        run = self.book().runs[route]
        if run.config.fleet is None:
            decision = act(run.controller, action, now)
            self._decided(run, run.apply(decision))
            return decision
        decision = act(copy.copy(run.controller), action, time.time())
        task = asyncio.get_running_loop().create_task(self._fleet_command(run, action))
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)
        return decision

    async def _fleet_command(self, run: CanaryRun, action: str) -> None:
        try:
            fleet = await self._fleet(run)
            done = None if fleet is None else await fleet.decide(
                time.time(), lambda c, s, k, now: act(c, action, now), leader_only=False)
        except Exception as exc:
            log.error("canary %s: %s not written to etcd: %s", run.route, action, exc)
            return
        if done is not None:
            self._decided(run, done[0])

    async def _pre_promotion(self, run: CanaryRun, decision: Decision) -> tuple[bool, str]:
        hook = run.config.pre_promotion
        if hook is None:
            return True, "promoted: every step passed"
        try:
            status = await self._post(run, hook, decision)
        except CanaryStateError as exc:
            return False, str(exc)
        if 200 <= status < 300:
            return True, f"promoted: every step passed; pre-promotion webhook answered {status}"
        return False, f"held: pre-promotion webhook answered {status}"

    async def _notify(self, run: CanaryRun, hook: WebhookConfig, decision: Decision) -> None:
        try:
            await self._post(run, hook, decision)
        except CanaryStateError:
            pass  # logged by _post; a notification is not retried

    async def _post(self, run: CanaryRun, hook: WebhookConfig, decision: Decision) -> int:
        """POST the decision to the hook; its status, or CanaryStateError saying why none."""
        cluster = self.book().clusters.get(hook.upstream)
        if not isinstance(cluster, Cluster):
            raise CanaryStateError(f"webhook upstream {hook.upstream!r} is not configured")
        body = json.dumps(payload(run, decision)).encode()
        head = make_head("POST", hook.path, hook.upstream,
                         [("content-type", "application/json")], body)
        try:
            got = await fetch(cluster, head, body, timeout=hook.timeout)
        except SubrequestError as exc:
            log.warning("canary %s: webhook %s%s failed: %s (%s)", run.route, hook.upstream,
                        hook.path, exc, exc.code)
            raise CanaryStateError(f"webhook {hook.upstream}{hook.path} failed: {exc.code}"
                                   ) from None
        log.info("canary %s: webhook %s%s answered %d", run.route, hook.upstream, hook.path,
                 got.status)
        return got.status


def act(c: CanaryController, action: str, now: float) -> Decision:
    """A person's command on a controller."""
    if action == "start":
        return c.start(now, "started by command")
    if action == "pause":
        return c.pause(now, "paused by command")
    if action == "abort":
        return c.abort(now, "aborted by command")
    if action == "promote":
        return c.promote(now, "promoted by command")
    raise ValueError(f"unknown canary action {action!r} (known: {', '.join(ACTIONS)})")


def payload(run: CanaryRun, decision: Decision) -> dict[str, Any]:
    """The JSON a webhook receives."""
    return {"route": run.route, "stable": run.config.stable, "canary": run.config.canary,
            "time": time.time(), **decision.as_dict()}
