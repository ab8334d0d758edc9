"""Circuit breaker: stop sending to an upstream that is failing, probe it, resume when it heals.

Sans-I/O: every method takes `now` (monotonic seconds); nothing here reads a clock or sleeps.

States and transitions (anything else does not happen):

    closed    --failure_rate or slow_call_rate reached, >= min_requests in window--> open
    open      --open_for elapsed (first admit/state/record at or after it)----------> half_open
    half_open --a probe fails or is slow-----------------------------------------> open
    half_open --a probe unfinished half_open_timeout after its admission---------> open
    half_open --half_open_requests probes all succeeded--------------------------> closed

`open_for` grows with consecutive openings: open_for * open_for_multiplier**(k-1), capped at
open_for_max; closing resets k. Every transition is a `Transition` value. The one caused by an
outcome is returned by `record`; the ones caused by time passing (open -> half_open, a probe
timing out) are queued and handed out by `drain()`, so the shell logs and counts all of them.

Half-open can never stick (resilience4j #903, Sentinel #1638): an admitted probe either
produces an outcome (`record`), is given back (`release`, for a request that was admitted but
never sent, e.g. refused by a later filter), or counts as failed half_open_timeout after its
admission. Outcomes of requests admitted before the current state was entered (their
`now - duration` is earlier) are ignored, so a slow request from the closed phase cannot close
or reopen a half-open breaker, nor use up a probe.

Window: a time-based ring of `buckets` buckets spanning `window` seconds (like resilience4j's
SlidingTimeWindowMetrics): O(1) per record, bounded memory; a call is forgotten between
window - window/buckets and window seconds after it was recorded.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

# BreakerConfig lives in resilience/config.py (plain Python, read by the config loader);
# re-exported here, where it has always been imported from.
from edgeward.resilience.config import BreakerConfig, FailureKind
from edgeward.resilience.outcome import Outcome, mask_of

__all__ = [
    "CLOSED", "HALF_OPEN", "OPEN", "BreakerConfig", "BreakerStats", "CircuitBreaker",
    "FailureKind", "Reason", "State", "Transition", "open_time", "rollout_threshold",
]

State = Literal["closed", "open", "half_open"]
Reason = Literal[
    "failure_rate",       # closed -> open
    "slow_call_rate",     # closed -> open
    "open_for_elapsed",   # open -> half_open
    "probe_failed",       # half_open -> open
    "probe_timeout",      # half_open -> open
    "probes_succeeded",   # half_open -> closed
]
CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"

_STALE_SLACK: Final = 1e-6  # float slack when comparing an admission time to a state's start


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change, returned as a value so the shell logs it and counts it."""

    from_state: State
    to_state: State
    reason: Reason
    at: float


@dataclass(frozen=True, slots=True)
class BreakerStats:
    """What the window holds now (for metrics and the admin API)."""

    state: State
    calls: int
    failures: int
    slow: int
    consecutive_openings: int


def open_time(cfg: BreakerConfig, openings: int) -> float:
    """How long the k-th consecutive opening lasts: open_for * multiplier**(k-1), capped."""
    exponent = openings - 1
    if exponent <= 0 or cfg.open_for_multiplier == 1.0:
        return cfg.open_for
    # Compare in log space so a long outage cannot overflow the power.
    if exponent * math.log(cfg.open_for_multiplier) >= math.log(cfg.open_for_max / cfg.open_for):
        return cfg.open_for_max
    return min(cfg.open_for * cfg.open_for_multiplier**exponent, cfg.open_for_max)


def rollout_threshold(base: float, span: float, ratio: float) -> float:
    """The failure rate that opens a canary's breaker when its p99 is `ratio` times the stable
    arm's: base + span at equal speed or faster, falling towards base as the canary slows."""
    return base + span * min(1.0, 1.0 / ratio)


class CircuitBreaker:
    """One breaker. `admit(now)` before sending; `record(...)` or `release(...)` after."""

    __slots__ = (
        "cfg", "_fail_mask", "_failure_rate", "_slow_rate", "_slow_call", "_min_requests",
        "_width", "_nbuckets", "_slot", "_calls", "_fails", "_slows", "_epoch", "_lo", "_hi",
        "_total_calls", "_total_fails", "_total_slows",
        "_state", "_since", "_open_until", "_openings",
        "_probes_admitted", "_probes_ok", "_probe_starts", "_queued",
    )

    def __init__(self, cfg: BreakerConfig | None = None) -> None:
        cfg = cfg if cfg is not None else BreakerConfig()
        problems = cfg.check()
        if problems:
            raise ValueError("; ".join(f"circuit_breaker.{k}: {r}" for k, r in problems))
        self.cfg = cfg
        self._fail_mask = mask_of(cfg.failure_on)
        # An off rate becomes an unreachable threshold, so the hot path has no None checks.
        self._failure_rate = cfg.failure_rate if cfg.failure_rate is not None else 2.0
        self._slow_rate = cfg.slow_call_rate if cfg.slow_call_rate is not None else 2.0
        self._slow_call = cfg.slow_call if cfg.slow_call_rate is not None else float("inf")
        self._min_requests = cfg.min_requests
        self._width = cfg.window / cfg.buckets
        self._nbuckets = cfg.buckets
        self._calls = [0] * cfg.buckets
        self._fails = [0] * cfg.buckets
        self._slows = [0] * cfg.buckets
        self._epoch: int | None = None  # bucket number (now // width) of the newest bucket
        self._slot = 0                  # its index in the ring: epoch % buckets
        # A range of `now` certainly inside bucket `epoch` (see _roll); empty without one.
        self._lo = math.inf
        self._hi = -math.inf
        self._total_calls = 0
        self._total_fails = 0
        self._total_slows = 0
        self._state: State = CLOSED
        self._since = float("-inf")     # when the current state was entered
        self._open_until = 0.0
        self._openings = 0              # consecutive openings since the last close
        self._probes_admitted = 0
        self._probes_ok = 0
        self._probe_starts: deque[float] = deque()  # admission times of unfinished probes
        self._queued: deque[Transition] = deque(maxlen=64)

    # --- the three calls the shell makes -------------------------------------------------------

    def admit(self, now: float) -> bool:
        """May a request be sent now? In half-open a True is a probe permit to be settled."""
        if self._state is CLOSED:
            return True
        self._advance(now)
        if self._state is HALF_OPEN:
            if self._probes_admitted < self.cfg.half_open_requests:
                self._probes_admitted += 1
                self._probe_starts.append(now)
                return True
            return False
        return self._state is CLOSED

    def record(self, outcome: Outcome, duration: float, now: float) -> Transition | None:
        """Feed the outcome of an admitted request that took `duration` seconds (since admit)."""
        state = self._state
        if state is not CLOSED:
            self._advance(now)
            state = self._state
        if now - duration < self._since - _STALE_SLACK:
            return None  # admitted before this state began: not evidence about it
        failed = outcome.flags & self._fail_mask != 0
        slow = duration >= self._slow_call
        if state is CLOSED:
            return self._record_closed(failed, slow, now)
        if state is HALF_OPEN and self._probe_starts:
            self._settle_probe(now - duration)
            if failed or slow:
                return self._open(now, "probe_failed")
            self._probes_ok += 1
            if self._probes_ok >= self.cfg.half_open_requests:
                return self._close(now)
        return None

    def release(self, now: float, duration: float | None = None) -> None:
        """Give back the permit of a request admitted `duration` seconds ago that produced no
        outcome (cancelled, refused by a later filter), so a probe permit is never leaked.

        Pass `duration` when known: a request admitted before the current state began then
        frees nothing. Without it the request is taken to be the oldest unfinished probe.
        """
        if self._state is CLOSED:
            return
        self._advance(now)
        starts = self._probe_starts
        if self._state is not HALF_OPEN or not starts:
            return
        if duration is None:
            admitted_at = starts[0]
        elif now - duration < self._since - _STALE_SLACK:
            return
        else:
            admitted_at = now - duration
        self._settle_probe(admitted_at)
        self._probes_admitted -= 1

    def set_latency_ratio(self, ratio: float | None) -> None:
        """While this upstream is a running canary's canary arm: `ratio` = its p99 / the stable
        arm's p99, and the failure threshold follows `rollout_threshold` (when configured);
        None (the rollout ended, or too few samples) restores `failure_rate`."""
        rollout = self.cfg.rollout_failure_rate
        if rollout is None or ratio is None or not ratio > 0.0 or math.isinf(ratio):
            rate = self.cfg.failure_rate
            self._failure_rate = rate if rate is not None else 2.0
        else:
            self._failure_rate = rollout_threshold(rollout.base, rollout.span, ratio)

    # --- reading --------------------------------------------------------------------------------

    def state(self, now: float) -> State:
        self._advance(now)
        return self._state

    def drain(self) -> list[Transition]:
        """Transitions caused by time passing since the last drain (oldest first)."""
        out = list(self._queued)
        self._queued.clear()
        return out

    def stats(self, now: float) -> BreakerStats:
        self._advance(now)
        if self._state is CLOSED:
            self._roll(now)
        return BreakerStats(
            self._state, self._total_calls, self._total_fails, self._total_slows, self._openings
        )

    def __repr__(self) -> str:
        return (
            f"<CircuitBreaker {self._state} calls={self._total_calls} "
            f"failures={self._total_fails} slow={self._total_slows} openings={self._openings}>"
        )

    # --- internals ------------------------------------------------------------------------------

    def _record_closed(self, failed: bool, slow: bool, now: float) -> Transition | None:
        i = self._slot if self._lo <= now < self._hi else self._roll(now)
        counts = self._calls
        counts[i] = counts[i] + 1  # (not `+=`: compiled, that is a generic in-place add)
        calls = self._total_calls = self._total_calls + 1
        if failed:
            counts = self._fails
            counts[i] = counts[i] + 1
            self._total_fails += 1
        if slow:
            counts = self._slows
            counts[i] = counts[i] + 1
            self._total_slows += 1
        if calls < self._min_requests:
            return None
        # Counts compared as floats (exact below 2**53) against the float thresholds.
        total = float(calls)
        if float(self._total_fails) >= self._failure_rate * total:
            return self._open(now, "failure_rate")
        if float(self._total_slows) >= self._slow_rate * total:
            return self._open(now, "slow_call_rate")
        return None

    def _settle_probe(self, admitted_at: float) -> None:
        """Forget the unfinished probe admitted at `admitted_at` (the nearest one), so the
        timeout keeps watching the probes that are really still out."""
        starts = self._probe_starts
        best, gap = 0, abs(starts[0] - admitted_at)
        for k in range(1, len(starts)):
            d = abs(starts[k] - admitted_at)
            if d < gap:
                best, gap = k, d
        del starts[best]

    def _roll(self, now: float) -> int:
        """Move the ring to `now`, emptying buckets that fell out of the window; return slot."""
        epoch = int(now // self._width)
        last = self._epoch
        if epoch == last:
            return self._slot  # the common case: same bucket as the previous call
        n = self._nbuckets
        if last is None or epoch - last >= n:
            if self._total_calls:
                self._clear_window()
            self._epoch = epoch
        elif epoch > last:
            calls, fails, slows = self._calls, self._fails, self._slows
            for e in range(last + 1, epoch + 1):
                j = e % n
                if calls[j]:
                    self._total_calls -= calls[j]
                    self._total_fails -= fails[j]
                    self._total_slows -= slows[j]
                    calls[j] = fails[j] = slows[j] = 0
            self._epoch = epoch
        else:
            return self._slot  # a clock that went back writes to the newest bucket
        self._slot = epoch % n
        # Times well inside this bucket skip the division next time: `lo <= now < hi` implies
        # now // width == epoch (the margin, 1e-12 relative, is far above float rounding).
        # Outside ordinary clock values and widths the range stays empty (always divide).
        width = self._width
        if -1e15 < now < 1e15 and width >= 1e-6:
            lo = epoch * width
            hi = lo + width
            margin = (abs(lo) + abs(hi)) * 1e-12
            self._lo = lo + margin
            self._hi = hi - margin
        else:
            self._lo = math.inf
            self._hi = -math.inf
        return self._slot

    def _clear_window(self) -> None:
        n = self._nbuckets
        self._calls[:] = [0] * n
        self._fails[:] = [0] * n
        self._slows[:] = [0] * n
        self._total_calls = self._total_fails = self._total_slows = 0

    def _advance(self, now: float) -> None:
        """Apply time-driven transitions; queue them for `drain`."""
        state = self._state
        if state is OPEN:
            if now >= self._open_until:
                self._queued.append(self._enter(HALF_OPEN, now, "open_for_elapsed"))
                self._probes_admitted = 0
                self._probes_ok = 0
                self._probe_starts.clear()
        elif state is HALF_OPEN:
            starts = self._probe_starts
            if starts and now >= starts[0] + self.cfg.half_open_timeout:
                self._queued.append(self._open(now, "probe_timeout"))

    def _open(self, now: float, reason: Reason) -> Transition:
        cfg = self.cfg
        self._openings += 1
        self._open_until = now + open_time(cfg, self._openings)
        self._probe_starts.clear()
        return self._enter(OPEN, now, reason)

    def _close(self, now: float) -> Transition:
        self._openings = 0
        self._clear_window()
        self._epoch = None
        self._lo = math.inf
        self._hi = -math.inf
        return self._enter(CLOSED, now, "probes_succeeded")

    def _enter(self, to: State, now: float, reason: Reason) -> Transition:
        t = Transition(self._state, to, reason, now)
        self._state = to
        self._since = now
        return t
