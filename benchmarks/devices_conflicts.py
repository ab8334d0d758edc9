"""Figure 2 of benchmarks/devices.py: the conflict rate with concurrent writers.

DEVICES shadows, each written concurrently by three writers through three gateways (each
request to a gateway picked at random): the device itself reporting a zone's temperature,
and two cloud applications writing desired setpoints (a scheduler and an energy optimizer;
both write `zones.zoneK.setpoint_c`, so their writes overlap on one field in six). Each
writer makes UPDATES updates with a think time of 0-2*THINK between them, for each THINK
of THINKS (saturated, then paced).

(a) Optimistic concurrency: GET the shadow, PATCH with `If-Match: "version"`; on 409 take
    the version from `current` and send the patch again (rebase in one round trip).
(b) Per-writer `seq` (a Lamport clock: the writer's next seq is above the `clock` of every
    answer it saw), no If-Match; 5 % of the updates are resent through another gateway.

Afterwards every gateway reads every shadow: the documents must be the same on all of them;
in (b) each must equal the RFC 7386 merge of all the updates in stamp (seq, writer) order
(the convergence rule in docs/devices.md); in (a) each version must equal the number of
updates (every update applied exactly once).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from devices_kit import Conn, metric_sum
from tests.support.gateway import GatewayProcess

from edgeward.devices.shadow import merge_patch

DEVICES = 20
UPDATES = 15
THINKS = (0.02, 0.3)   # mean think time of a writer: saturated, then paced
WRITERS = ("device", "app-optimizer", "app-scheduler")
RESEND = 0.05
CAS_METRIC = "edgeward_device_cas_conflicts_total"


@dataclass
class Tally:
    updates: int = 0
    attempts: int = 0                  # PATCHes sent
    refused: int = 0                   # 409 answers
    unavailable: int = 0               # 503 device_store_unavailable: cas_attempts all lost
    rebased: int = 0                   # updates that needed at least one rebase
    windows: list[float] = field(default_factory=list)   # GET sent -> first PATCH answered
    outcomes: Counter[str] = field(default_factory=Counter)
    resent: Counter[str] = field(default_factory=Counter)
    leaves: int = 0
    suppressed: int = 0
    sent: dict[str, list[tuple[int, str, str, dict[str, Any]]]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0


def patch_for(writer: str, rng: random.Random, i: int) -> tuple[str, dict[str, Any], int]:
    """(section, merge patch, number of leaf writes) of a writer's i-th update."""
    zone = f"zone{rng.randrange(6)}"
    if writer == "device":
        return "reported", {"zones": {zone: {"temp_c": round(18 + rng.random() * 6, 2)}}}, 1
    if writer == "app-scheduler":
        day = rng.choice(("mon", "tue", "wed", "thu", "fri"))
        return "desired", {"zones": {zone: {"setpoint_c": 19 + i % 5}},
                           "schedule": {day: {"on": f"0{6 + i % 3}:00"}}}, 2
    return "desired", {"zones": {zone: {"setpoint_c": 21 + i % 4, "fan": "auto"}}}, 2


async def _if_match_writer(ports: list[int], device: str, writer: str, think: float, tally: Tally,
                           rng: random.Random) -> None:
    conns = {p: Conn(p) for p in ports}
    path = f"/devices/{device}/shadow"
    for i in range(UPDATES):
        await asyncio.sleep(rng.random() * 2 * think)
        section, patch, _ = patch_for(writer, rng, i)
        start = time.perf_counter()
        got = await conns[rng.choice(ports)].call("GET", path)
        version = got.json()["version"] if got.status == 200 else 0
        first = True
        while True:
            ans = await conns[rng.choice(ports)].call(
                "PATCH", path, {"state": {section: patch}, "writer": writer},
                {"if-match": f'"{version}"'})
            tally.attempts += 1
            if first:
                tally.windows.append(time.perf_counter() - start)
            if ans.status == 200:
                break
            if ans.status == 503:   # every CAS round lost (not a 409): resend
                tally.unavailable += 1
                continue
            assert ans.status == 409, (ans.status, ans.body[:200])
            tally.refused += 1
            tally.rebased += first
            first = False
            version = ans.json()["current"]["version"]
        tally.updates += 1
    for c in conns.values():
        c.close()


async def _seq_writer(ports: list[int], device: str, writer: str, think: float, tally: Tally,
                      rng: random.Random) -> None:
    conns = {p: Conn(p) for p in ports}
    path = f"/devices/{device}/shadow"
    seq = clock = 0
    log = tally.sent.setdefault(device, [])
    for i in range(UPDATES):
        await asyncio.sleep(rng.random() * 2 * think)
        section, patch, leaves = patch_for(writer, rng, i)
        seq = max(seq, clock) + 1
        body = {"state": {section: patch}, "writer": writer, "seq": seq}
        log.append((seq, writer, section, patch))
        port = rng.choice(ports)
        ans = await conns[port].call("PATCH", path, body)
        while ans.status == 503:   # every CAS round lost: the writer resends (idempotent)
            tally.unavailable += 1
            ans = await conns[port].call("PATCH", path, body)
        assert ans.status == 200, (ans.status, ans.body[:200])
        doc = ans.json()
        tally.updates += 1
        tally.attempts += 1
        tally.outcomes[doc["outcome"]] += 1
        tally.leaves += leaves
        tally.suppressed += len(doc["suppressed"])
        clock = doc["clock"]
        if rng.random() < RESEND:   # an at-least-once retry, through another gateway
            other = rng.choice([p for p in ports if p != port])
            again = await conns[other].call("PATCH", path, body)
            tally.resent[again.json()["outcome"]] += 1
    for c in conns.values():
        c.close()


def expected(log: list[tuple[int, str, str, dict[str, Any]]]) -> dict[str, Any]:
    """Rule 7: the updates applied once each, in stamp order, as RFC 7386 merge patches."""
    state: dict[str, Any] = {"desired": {}, "reported": {}}
    for _, _, section, patch in sorted(log, key=lambda e: (e[0], e[1])):
        state[section] = merge_patch(state[section], patch)
    return state


async def _final(ports: list[int], devices: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each device's document as each gateway reads it."""
    out: dict[str, list[dict[str, Any]]] = {}
    for port in ports:
        conn = Conn(port)
        for d in devices:
            out.setdefault(d, []).append((await conn.call("GET", f"/devices/{d}/shadow")).json())
        conn.close()
    return out


async def run_mode(ports: list[int], mode: str, think: float
                   ) -> tuple[Tally, dict[str, list[Any]]]:
    devices = [f"cc-{mode}-{think}-{n}" for n in range(DEVICES)]
    tally = Tally()
    writer = _if_match_writer if mode == "ifmatch" else _seq_writer
    await asyncio.gather(*(writer(ports, d, w, think, tally, random.Random(f"{d}/{w}"))
                           for d in devices for w in WRITERS))
    tally.seconds = time.perf_counter() - tally.started
    return tally, await _final(ports, devices)


def _same(docs: list[dict[str, Any]]) -> bool:
    keys = [(d["version"], d["state"]) for d in docs]
    return all(k == keys[0] for k in keys)


async def one_pace(gws: list[GatewayProcess], think: float) -> tuple[list[str], float]:
    """The lines of both modes at one think time, and the If-Match read->write window."""
    ports = [gw.port for gw in gws]
    cas0 = metric_sum(gws, CAS_METRIC)
    a, docs_a = await run_mode(ports, "ifmatch", think)
    cas1 = metric_sum(gws, CAS_METRIC)
    b, docs_b = await run_mode(ports, "seq", think)
    cas2 = metric_sum(gws, CAS_METRIC)
    same_a = sum(_same(v) and v[0]["version"] == len(WRITERS) * UPDATES
                 for v in docs_a.values())
    same_b = sum(_same(v) for v in docs_b.values())
    merged = sum(all({s: v["state"][s] for s in ("desired", "reported")}
                     == expected(b.sent[d]) for v in vs) for d, vs in docs_b.items())
    window = sum(a.windows) / len(a.windows)
    rate = len(WRITERS) * UPDATES / a.seconds          # updates per second per device
    rivals = rate * (len(WRITERS) - 1) / len(WRITERS)  # the rate of a writer's rivals
    stale = b.outcomes["stale"]
    return [
        f"  think 0-{2 * think * 1000:.0f} ms, {rate:.1f} updates/s per device:",
        f"    (a) If-Match + rebase: 409 on {a.refused / a.attempts:.2%} of PATCHes "
        f"({a.refused}/{a.attempts}), {a.rebased / a.updates:.1%} of updates rebased, CAS "
        f"retries {cas1 - cas0:.0f}, 503s {a.unavailable}; model 1-exp(-rivals "
        f"{rivals:.1f}/s x window {window * 1000:.1f} ms) = "
        f"{1 - math.exp(-rivals * window):.2%}; version = updates on {same_a}/{DEVICES}, "
        f"same on all gateways",
        f"    (b) per-writer seq: stale {stale / b.updates:.1%} of updates, suppressed "
        f"{b.suppressed / b.leaves:.2%} of field writes ({b.suppressed}/{b.leaves}), "
        f"resends {dict(b.resent)}, CAS retries {cas2 - cas1:.0f}, 503s {b.unavailable} "
        f"(resent); {same_b}/{DEVICES} same "
        f"on all gateways, {merged}/{DEVICES} = stamp-order merge",
    ], window


async def figure(gws: list[GatewayProcess]) -> list[str]:
    lines = [f"conflicts: {DEVICES} devices x {len(WRITERS)} writers (the device reports, 2 "
             f"apps write desired, one field in six shared) x {UPDATES} updates each, "
             f"through {len(gws)} gateways at random"]
    window = 0.0
    for think in THINKS:
        more, window = await one_pace(gws, think)
        lines += more
    lines.append(f"  seeds' 0.07 % = a writer's rivals writing once every "
                 f"{window / 0.0007:.1f} s at the paced {window * 1000:.1f} ms window (If-Match); "
                 f"with seq only same-field races lose, and no update is refused (409)")
    return lines
