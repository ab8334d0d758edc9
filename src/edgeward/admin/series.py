"""Dashboard time series: turn cumulative counters into per-step rates and latency quantiles.

Sans-I/O. The shell calls `add(sample, now)` with a `stats_sample()` (CUMULATIVE counts per
route and upstream, like Prometheus counters) and `view(now)` to read the last `horizon`
seconds cut into `step`-second slots.

How a sample becomes slot data:
  * The first sample of a name is its baseline: counts gathered before the keeper saw the name
    have no known time, so they are not charted (Prometheus `rate()` does the same).
  * The delta since the previous sample is spread evenly over the interval between the two
    sample times, and each slot also records how many seconds of it were covered. A slot's rate
    is events / covered seconds, so timer jitter in the sampling loop, a missed tick or a
    half-covered first slot never shows up as a fake spike or dip.
  * A counter that went DOWN (the gateway restarted its stats, a route was removed and
    re-added) or a histogram whose bucket bounds changed is a reset: the new values become the
    baseline and that interval contributes nothing, rather than a negative rate.
  * p50/p99 come from the per-slot bucket deltas with the same linear interpolation as
    Prometheus `histogram_quantile`: rank = q * count, find the first bucket whose cumulative
    count reaches the rank, interpolate inside it (the first bucket starts at 0); a rank in the
    +Inf bucket answers the highest finite bound.
A name missing from samples for longer than the horizon is forgotten.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

# 15 minutes at 5 s: 180 points per line, what a glance at "is it getting worse?" needs; the
# same window and resolution as Grafana's "Last 15 minutes" with a 5 s refresh, and Envoy's
# admin /stats history is a single instant, so the dashboard keeps its own.
DEFAULT_HORIZON = 900.0
DEFAULT_STEP = 5.0
# Beyond this many slots a view stops being a glance and becomes a TSDB: use Prometheus then.
MAX_SLOTS = 10_000
QUANTILES = (0.5, 0.99)

# Endpoints are named "upstream/endpoint" and carry no latency buckets (their attempts' error
# rate is what the dashboard shows for an upstream without health checks).
KINDS = ("routes", "upstreams", "endpoints")


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float | None:
    """The q-quantile of a histogram given upper bounds (ascending) and CUMULATIVE counts.

    None when the histogram holds no observations. A rank that lands in the +Inf bucket answers
    the highest finite bound (there is nothing to interpolate towards), as Prometheus does.
    """
    if not bounds or len(bounds) != len(counts):
        return None
    total = counts[-1]
    if total <= 0:
        return None
    rank = min(max(q, 0.0), 1.0) * total
    i = next(j for j, c in enumerate(counts) if c >= rank)
    upper = bounds[i]
    if math.isinf(upper):
        finite = [b for b in bounds if not math.isinf(b)]
        return finite[-1] if finite else None
    if i == 0:
        lower, below = (0.0 if upper > 0 else upper), 0.0
    else:
        lower, below = bounds[i - 1], counts[i - 1]
    inside = counts[i] - below
    if inside <= 0:
        return upper
    # Clamped: the interpolation can round a last bit past the bucket's upper bound.
    return min(upper, lower + (upper - lower) * (rank - below) / inside)


def _parse_le(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"bucket bound must be a number or '+Inf', got {raw!r}")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str) and raw.strip() in ("+Inf", "Inf", "inf", "+inf"):
        return math.inf
    raise ValueError(f"bucket bound must be a number or '+Inf', got {raw!r}")


class _Track:
    """One route's or upstream's ring of slots plus its last cumulative reading."""

    __slots__ = (
        "bounds", "last_req", "last_err", "last_buckets", "last_seen",
        "slot_ids", "covered", "requests", "errors", "buckets",
    )

    def __init__(self, size: int, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.last_req = 0.0
        self.last_err = 0.0
        self.last_buckets: tuple[float, ...] = ()
        self.last_seen = 0.0
        self.slot_ids: list[int | None] = [None] * size
        self.covered = [0.0] * size
        self.requests = [0.0] * size
        self.errors = [0.0] * size
        self.buckets = [[0.0] * len(bounds) for _ in range(size)]

    def slot(self, k: int) -> int:
        """Ring index of absolute slot `k`, cleared if it held an older slot."""
        i = k % len(self.slot_ids)
        if self.slot_ids[i] != k:
            self.slot_ids[i] = k
            self.covered[i] = 0.0
            self.requests[i] = 0.0
            self.errors[i] = 0.0
            row = self.buckets[i]
            for j in range(len(row)):
                row[j] = 0.0
        return i


class SeriesKeeper:
    """Per-step request rate, error rate and p50/p99 for each route and upstream."""

    def __init__(self, horizon: float = DEFAULT_HORIZON, step: float = DEFAULT_STEP) -> None:
        if not step > 0:
            raise ValueError(f"step must be > 0 seconds, got {step!r}")
        if not horizon >= step:
            raise ValueError(f"horizon must be >= step ({step}), got {horizon!r}")
        size = math.ceil(horizon / step)
        if size > MAX_SLOTS:
            raise ValueError(
                f"horizon/step must be <= {MAX_SLOTS} slots, got {horizon}/{step} = {size}"
            )
        self.horizon = float(horizon)
        self.step = float(step)
        self.size = size
        self._tracks: dict[str, dict[str, _Track]] = {kind: {} for kind in KINDS}
        self._last_now: float | None = None
        # view() is polled (every 2 s by the dashboard) far more often than samples arrive:
        # the lines only change on add() or when the window moves by a slot.
        self._version = 0
        self._cached: tuple[int, int, dict[str, Any]] | None = None

    def add(self, sample: Mapping[str, Any], now: float) -> None:
        """Fold one cumulative `stats_sample()` taken at monotonic time `now` into the slots."""
        last = self._last_now
        if last is not None and now < last:
            raise ValueError(f"now must not go backwards: got {now}, last sample at {last}")
        for kind in KINDS:
            named = sample.get(kind) or {}
            tracks = self._tracks[kind]
            for name, stats in named.items():
                self._fold(tracks, str(name), stats, now)
            for name in [n for n, t in tracks.items() if now - t.last_seen > self.horizon]:
                del tracks[name]
        self._last_now = now
        self._version += 1

    def _fold(
        self, tracks: dict[str, _Track], name: str, stats: Mapping[str, Any], now: float
    ) -> None:
        req = float(stats.get("requests", 0))
        err = float(stats.get("errors", 0))
        pairs = stats.get("buckets") or []
        bounds = tuple(_parse_le(le) for le, _ in pairs)
        cum = tuple(float(c) for _, c in pairs)
        track = tracks.get(name)
        fresh = track is None or track.bounds != bounds
        if track is None or track.bounds != bounds:
            track = tracks[name] = _Track(self.size, bounds)
        reset = req < track.last_req or err < track.last_err or any(
            c < p for c, p in zip(cum, track.last_buckets, strict=False)
        )
        if not fresh and not reset:
            # Since its previous reading (normally the previous sample; earlier if the name was
            # missing from some samples) the name gained these events.
            self._spread(track, track.last_seen, now, req - track.last_req,
                         err - track.last_err,
                         [c - p for c, p in zip(cum, track.last_buckets, strict=True)])
        track.last_req, track.last_err, track.last_buckets = req, err, cum
        track.last_seen = now

    def _spread(
        self, track: _Track, start: float, end: float,
        d_req: float, d_err: float, d_buckets: list[float],
    ) -> None:
        step = self.step
        span = end - start
        if span <= 0:
            # Two samples at the same instant: the events belong to the slot holding `end`.
            i = track.slot(math.ceil(end / step) - 1)
            self._put(track, i, 0.0, d_req, d_err, d_buckets, 1.0)
            return
        first = max(math.floor(start / step), math.floor((end - self.horizon) / step))
        k = first
        while k * step < end:
            lo, hi = max(start, k * step), min(end, (k + 1) * step)
            if hi > lo:
                self._put(track, track.slot(k), hi - lo, d_req, d_err, d_buckets, (hi - lo) / span)
            k += 1

    @staticmethod
    def _put(
        track: _Track, i: int, covered: float,
        d_req: float, d_err: float, d_buckets: list[float], share: float,
    ) -> None:
        track.covered[i] += covered
        track.requests[i] += d_req * share
        track.errors[i] += d_err * share
        row = track.buckets[i]
        for j, d in enumerate(d_buckets):
            row[j] += d * share

    def view(self, now: float) -> dict[str, Any]:
        """The last `horizon` seconds, oldest slot first, ending with the slot holding `now`.

        `t` gives each slot's start relative to `now` (negative seconds). Per name: `rps`
        (requests/s), `eps` (errors/s), `err` (errors / requests), `p50` and `p99` (in the
        unit of the bucket bounds, seconds by convention). A value is None where the slot has
        no data (not sampled yet, or no requests for the ratio and the quantiles).
        """
        step = self.step
        last_k = math.ceil(now / step) - 1
        ks = range(last_k - self.size + 1, last_k + 1)
        out: dict[str, Any] = {
            "step": step,
            "horizon": self.horizon,
            "t": [round(k * step - now, 3) for k in ks],
        }
        cached = self._cached
        if cached is None or cached[0] != self._version or cached[1] != last_k:
            lines = {
                kind: {name: self._line(track, ks)
                       for name, track in sorted(self._tracks[kind].items())}
                for kind in KINDS
            }
            cached = self._cached = (self._version, last_k, lines)
        out.update(cached[2])
        return out

    def _line(self, track: _Track, ks: range) -> dict[str, list[float | None]]:
        rps: list[float | None] = []
        eps: list[float | None] = []
        err: list[float | None] = []
        qs: list[list[float | None]] = [[] for _ in QUANTILES]
        size = self.size
        for k in ks:
            i = k % size
            covered = track.covered[i] if track.slot_ids[i] == k else 0.0
            if covered <= 0:
                rps.append(None)
                eps.append(None)
                err.append(None)
                for line in qs:
                    line.append(None)
                continue
            req, errs = track.requests[i], track.errors[i]
            rps.append(req / covered)
            eps.append(errs / covered)
            err.append(errs / req if req > 0 else None)
            cum = track.buckets[i]
            for line, q in zip(qs, QUANTILES, strict=True):
                line.append(histogram_quantile(q, track.bounds, cum))
        return {"rps": rps, "eps": eps, "err": err, "p50": qs[0], "p99": qs[1]}
