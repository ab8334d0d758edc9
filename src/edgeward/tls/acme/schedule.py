"""When to obtain or renew a certificate (sans-I/O).

    when, what = next_action(now, not_before, not_after, failures, policy)

  - no certificate (none on disk yet, or an expired one): obtain now;
  - a certificate: renew once `renew_at` of its lifetime has passed (2/3: 30 days before the
    end of a 90-day certificate);
  - after `failures` failed attempts in a row (the last one just now): wait
    retry_base * 2**(failures-1), at most retry_max, then try again. A failing renewal keeps
    the certificate it has serving; the waits never grow past retry_max, so a CA that comes
    back is used within retry_max.
`now` is wall-clock seconds (certificate dates are wall-clock); the shell calls this after
every attempt and at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgeward.tls.config import DEFAULT_RENEW_AT, DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX

What = Literal["obtain", "renew"]


@dataclass(frozen=True)
class RenewalPolicy:
    renew_at: float = DEFAULT_RENEW_AT
    retry_base: float = DEFAULT_RETRY_BASE
    retry_max: float = DEFAULT_RETRY_MAX

    def backoff(self, failures: int) -> float:
        """The wait after `failures` failures in a row (0 when there were none)."""
        if failures <= 0:
            return 0.0
        exponent = min(failures - 1, 62)   # 2**62 s is far past any retry_max
        return min(self.retry_max, self.retry_base * 2.0 ** exponent)

    def renew_time(self, not_before: float, not_after: float) -> float:
        return not_before + self.renew_at * (not_after - not_before)


def next_action(now: float, not_before: float | None, not_after: float | None, failures: int,
                policy: RenewalPolicy = RenewalPolicy()) -> tuple[float, What]:
    """(when, what): the time of the next attempt and whether it obtains or renews."""
    retry_at = now + policy.backoff(failures)
    if not_before is None or not_after is None or not_after <= now:
        return retry_at, "obtain"
    return max(retry_at, policy.renew_time(not_before, not_after)), "renew"
