"""A canary shared by the fleet through etcd (`canary.fleet`; docs/canary.md).

Keys under `{etcd_prefix}{route}/`:

- `state`: the shared state (fleetstate.py). Every worker of every gateway watches it and
  applies its weight and window (`CanaryRun.apply_state`), and reads it when it starts, so a
  restarted gateway resumes the canary where the fleet is.
- `members/{member}`: each worker's counts of the window in force, put on every tick under
  the worker's lease (gone within lease_ttl of the worker stopping).
- `leader`: the member that decides. A worker becomes leader with a transaction that creates
  the key under its lease only if it is absent; it stays leader while its lease lives (the
  key goes with the lease, and the next worker's transaction then succeeds). The leader reads
  the state and every member's counts, merges the counts of the current window, ticks a
  controller restored from the state, and writes the new state in a transaction that
  compares the state's mod revision it read and that the leader key still names it: a
  deposed leader, or two workers believing they lead, cannot both write.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import time
from collections.abc import Callable
from typing import Any

from edgeward.canary.controller import CanaryController, Decision
from edgeward.canary.fleetstate import (
    counts_value,
    merge_window,
    next_state,
    parse_counts,
    restore,
)
from edgeward.canary.judge import ArmFigures
from edgeward.canary.run import CanaryRun
from edgeward.discovery.etcd import EtcdConfig, EtcdConnection, EtcdPrefixWatcher

log = logging.getLogger("edgeward.canary")

Step = Callable[[CanaryController, ArmFigures, ArmFigures, float], Decision | None]


def member_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class StateWatcher(EtcdPrefixWatcher[dict[str, Any]]):
    def parse(self, key: bytes, value: bytes) -> dict[str, Any] | None:
        try:
            state = json.loads(value)
        except ValueError:
            log.error("canary state %s is not JSON; ignored", key.decode())
            return None
        return state if isinstance(state, dict) else None


class FleetCanary:
    """One route's fleet canary as one worker takes part in it."""

    def __init__(self, run: CanaryRun, etcd: EtcdConfig, member: str) -> None:
        fleet = run.config.fleet
        assert fleet is not None
        self.route = run.route
        self.etcd = etcd
        self.config = run.config
        base = f"{fleet.etcd_prefix}{run.route}/"
        self.state_key = f"{base}state".encode()
        self.leader_key = f"{base}leader".encode()
        self.members_prefix = f"{base}members/".encode()
        self.member = member
        self.member_key = self.members_prefix + member.encode()
        self.ttl = max(2, math.ceil(fleet.lease_ttl))
        self.conn = EtcdConnection(etcd.endpoints, etcd.timeout, etcd.access)
        self.lease: int | None = None
        self.refreshed = 0.0
        self.leader = False
        self.rng = random.Random()
        self.run = run
        self.watcher = StateWatcher(etcd.endpoints, self.state_key, self._on_states,
                                    timeout=etcd.timeout, access=etcd.access)

    def _on_states(self, states: list[dict[str, Any]]) -> None:
        for state in states:
            try:
                self.run.apply_state(state)
            except ValueError as exc:
                log.error("canary %s: state in etcd ignored: %s", self.route, exc)

    async def start(self) -> None:
        try:
            await self.watcher.start()
        except ConnectionError as exc:
            log.error("canary %s: etcd state: %s; retrying in the background", self.route, exc)
            self.watcher.retry_in_background()

    async def close(self) -> None:
        await self.watcher.close()
        lease, self.lease = self.lease, None
        if lease is not None:
            try:
                await self.conn.call(lambda c: c.revoke_lease(lease))
            except Exception as exc:  # best effort: the lease expires anyway
                log.warning("canary %s: lease not revoked: %s", self.route, exc)
        await self.conn.reset()

    async def _ensure_lease(self, now: float) -> int:
        if self.lease is not None and now - self.refreshed >= self.ttl / 3:
            lease = self.lease
            reply = await self.conn.call(lambda c: c.refresh_lease(lease))
            if reply is None or int(reply.TTL) <= 0:
                log.warning("canary %s: lease lost; leadership ends", self.route)
                self.lease, self.leader = None, False
            else:
                self.refreshed = now
        if self.lease is None:
            granted = await self.conn.call(lambda c: c.lease(self.ttl))
            self.lease, self.refreshed = int(granted.id), now
        return self.lease

    async def tick(self, now_wall: float) -> tuple[Decision, dict[str, Any]] | None:
        """Publish this worker's counts, campaign, and decide when leader."""
        lease = await self._ensure_lease(time.monotonic())
        stable, canary = self.run.figures()
        value = json.dumps(counts_value(self.run.window, stable, canary)).encode()
        await self.conn.call(lambda c: c.put(self.member_key, value, lease=lease))
        await self._campaign(lease)
        if not self.leader:
            return None
        return await self.decide(now_wall, lambda c, s, k, now: c.tick(now, s, k))

    async def _campaign(self, lease: int) -> None:
        key, me = self.leader_key, self.member.encode()

        async def txn(c: Any) -> tuple[bool, Any]:
            t = c.transactions
            won, got = await c.transaction(compare=[t.create(key) == 0],
                                           success=[t.put(key, me, lease=lease)],
                                           failure=[t.get(key)])
            return bool(won), got

        won, responses = await self.conn.call(txn)
        was = self.leader
        self.leader = bool(won) or any(v == me for v, _ in (responses[0] if responses else []))
        if self.leader and not was:
            log.info("canary %s: %s leads the fleet's decisions", self.route, self.member)

    async def decide(self, now_wall: float, step: Step, leader_only: bool = True
                     ) -> tuple[Decision, dict[str, Any]] | None:
        """Read the state and the counts, take `step` on a restored controller, write the new
        state if it changed (compare-and-swap; the leader's writes also compare that the
        leader key still names it); the decision and state written, or None."""
        got = await self.conn.call(lambda c: c.get(self.state_key))
        members = await self.conn.call(lambda c: c.get_prefix(self.members_prefix))
        controller = CanaryController(self.config.steps(), self.config.judge_settings(),
                                      now_wall)
        if got is None and leader_only:
            if not self.config.autostart:
                return None
            state: dict[str, Any] = {"window": 0, "decisions": []}
            decision: Decision | None = controller.start(now_wall,
                                                          "started with the configuration")
            revision = 0
        else:
            state = json.loads(got.value) if got is not None else {"window": 0, "decisions": []}
            if got is not None:
                restore(controller, state)
            counts = [m for m in (parse_counts(_json(kv.value)) for kv in members.kvs)
                      if m is not None]
            stable, canary = merge_window(counts, int(state.get("window", 0)),
                                          self.config.analysis.samples, self.rng)
            decision = step(controller, stable, canary, now_wall)
            revision = got.mod_revision if got is not None else 0
        if decision is None:
            return None
        new = next_state(controller, state, decision, now_wall)
        if not await self._write(revision, json.dumps(new).encode(), leader_only):
            return None
        self.run.apply_state(new)
        return decision, new

    async def _write(self, revision: int, value: bytes, leader_only: bool) -> bool:
        key, leader, me = self.state_key, self.leader_key, self.member.encode()

        async def txn(c: Any) -> tuple[bool, Any]:
            t = c.transactions
            compare = [t.mod(key) == revision]
            if leader_only:
                compare.append(t.value(leader) == me)
            ok, got = await c.transaction(
                compare=compare,
                success=[t.put(key, value)], failure=[])
            return bool(ok), got

        ok, _ = await self.conn.call(txn)
        if not ok:
            log.warning("canary %s: the state changed meanwhile; decision dropped",
                        self.route)
            self.leader = self.leader and not leader_only
        return bool(ok)


def _json(value: bytes) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return None
