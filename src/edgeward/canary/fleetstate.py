"""A fleet canary's shared state and the merge of the fleet's window counts (sans-I/O).

The state (phase, weight, step, when the step started, the window number and the recent
decisions) is one JSON value in etcd; `state_of` writes it from a controller and `restore`
puts it back into one. Times in it are wall-clock seconds (the gateways of a fleet share no
monotonic clock). The window number goes up by one with every decision that opens a new
window, so every gateway resets its arms when it sees it change and the leader merges only
counts published for the window in force.

The merge of the members' counts of one arm: requests and errors are summed; the durations
are the union of the members' samples, and when the union holds more than the reservoir's
cap a weighted reservoir sample (Efraimidis-Spirakis: each sample's key is u ** (1 / w),
the cap largest keys kept) draws `cap` of them, each sample weighted by how many requests it
stands for (its member's requests / its member's sample count), so a gateway that served
ten times the traffic weighs ten times as much in the latency test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Final

from edgeward.canary.controller import CanaryController, Decision, Phase
from edgeward.canary.judge import ArmFigures

# Decisions kept in the shared state (the admin API of every gateway shows them).
STATE_DECISIONS: Final = 20


@dataclass(frozen=True, slots=True)
class MemberCounts:
    """What one member published: the window it counted and its two arms' figures."""

    window: int
    stable: ArmFigures
    canary: ArmFigures


def counts_value(window: int, stable: ArmFigures, canary: ArmFigures) -> dict[str, Any]:
    return {"window": window,
            "stable": [stable.requests, stable.errors, list(stable.durations)],
            "canary": [canary.requests, canary.errors, list(canary.durations)]}


def _arm(value: Any) -> ArmFigures:
    requests, errors, durations = value
    if not (isinstance(requests, int) and isinstance(errors, int) and 0 <= errors <= requests
            and isinstance(durations, list)):
        raise ValueError("arm figures must be [requests, errors <= requests, [durations]]")
    return ArmFigures(requests, errors, [float(d) for d in durations])


def parse_counts(value: Any) -> MemberCounts | None:
    """A member's published counts, or None when the value is not such counts."""
    try:
        return MemberCounts(int(value["window"]), _arm(value["stable"]),
                            _arm(value["canary"]))
    except (KeyError, TypeError, ValueError):
        return None


def merge(arms: list[ArmFigures], cap: int, rng: random.Random) -> ArmFigures:
    """One arm's figures of the fleet (see the module docstring)."""
    requests = sum(a.requests for a in arms)
    errors = sum(a.errors for a in arms)
    weighted = [(d, a.requests / len(a.durations)) for a in arms for d in a.durations]
    if len(weighted) <= cap:
        return ArmFigures(requests, errors, [d for d, _ in weighted])
    keyed = sorted(((rng.random() ** (1.0 / w) if w > 0 else 0.0, d) for d, w in weighted),
                   reverse=True)
    return ArmFigures(requests, errors, [d for _, d in keyed[:cap]])


def merge_window(members: list[MemberCounts], window: int, cap: int, rng: random.Random
                 ) -> tuple[ArmFigures, ArmFigures]:
    """The fleet's (stable, canary) figures of `window`; other windows' counts are left out."""
    current = [m for m in members if m.window == window]
    return (merge([m.stable for m in current], cap, rng),
            merge([m.canary for m in current], cap, rng))


def state_of(c: CanaryController, window: int, decisions: list[dict[str, Any]]
             ) -> dict[str, Any]:
    return {"phase": c.phase.value, "weight": c.weight, "step": c.step,
            "step_started": c.step_started, "reported": c.reported, "window": window,
            "decisions": decisions[-STATE_DECISIONS:]}


def next_state(c: CanaryController, state: dict[str, Any], d: Decision, now_wall: float
               ) -> dict[str, Any]:
    """The state after decision `d` (already applied to `c`, restored from `state`)."""
    window = int(state.get("window", 0)) + (1 if d.new_window else 0)
    decisions = [*state.get("decisions", []), {"time": now_wall, **d.as_dict()}]
    return state_of(c, window, decisions)


def restore(c: CanaryController, state: dict[str, Any]) -> None:
    """Put the shared state into a controller (ValueError when it is not a state)."""
    try:
        phase = Phase(state["phase"])
        weight, step = int(state["weight"]), int(state["step"])
        started = float(state["step_started"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a canary state: {exc}") from None
    if not 0 <= weight <= 100:
        raise ValueError(f"weight {weight} is not 0..100")
    c.phase, c.weight, c.step, c.step_started = phase, weight, step, started
    c.reported = float(state.get("reported", started))
