"""The identity an authentication filter puts on a request: `req.consumer`.

A leaf module (it imports nothing of edgeward): `edgeward.http.message` types the request's
`consumer` slot with it. A `Consumer` is immutable and shared by every request of that
consumer; configured ones come from `consumers:` (or etcd), others are made by a method that
knows a caller without a configured consumer (a JWT whose subject names none, a forward-auth
service's answer) and are then `configured = False`.
"""

from __future__ import annotations


class Consumer:
    """Who is calling.

    `name`: the consumer's name (the `consumers:` key, or the identity a method found);
    `groups`: its groups (route allow-lists name them); `labels`: free-form tags for filters;
    `configured`: whether it is a configured consumer; `metric_label`: the value of the
    `consumer` label in edgeward_consumer_requests_total ("" keeps it out of that metric);
    `rate`/`burst`: its rate-limit override for `rate_limit: {key: consumer}` (rate 0.0: none).
    """

    __slots__ = ("name", "groups", "labels", "configured", "metric_label", "rate", "burst")

    def __init__(self, name: str, groups: frozenset[str] = frozenset(),
                 labels: dict[str, str] | None = None, *, configured: bool = True,
                 metric_label: str = "", rate: float = 0.0, burst: int = 0) -> None:
        self.name = name
        self.groups = groups
        self.labels: dict[str, str] = dict(labels or {})
        self.configured = configured
        self.metric_label = metric_label
        self.rate = rate
        self.burst = burst

    def in_any(self, names: frozenset[str], groups: frozenset[str]) -> bool:
        """Whether the consumer is one of `names` or in one of `groups`."""
        return self.name in names or not self.groups.isdisjoint(groups)

    def __repr__(self) -> str:
        kind = "" if self.configured else " (not configured)"
        return f"<Consumer {self.name}{kind}>"
