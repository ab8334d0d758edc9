"""What an authentication method is to the `auth` filter.

`authenticate(req, now)` returns (or, when it must wait, an awaitable of):
- a `Consumer`: the credential is good; `NOBODY` when it is good but names no consumer
  (forward auth without `consumer_header`);
- `None`: the request carries no credential of this kind (the next method is tried);
- a `Failure`: a credential of this kind is there and is refused.
`now` is the wall clock (tokens' exp/nbf are wall-clock times).
"""

from __future__ import annotations

from collections.abc import Awaitable

from mypy_extensions import mypyc_attr

from edgeward.auth.consumer import Consumer
from edgeward.filters.api import Request

# Admitted without a consumer: req.consumer stays None.
NOBODY = Consumer("", configured=False)


class Failure:
    """A refused credential: our error (`code` with `status`, `detail`, and for a 401 the
    RFC 6750 `error` of the Bearer challenge), or the auth service's own answer (`code` None:
    `status`, `fields` and `body` go back to the client as they are)."""

    __slots__ = ("status", "code", "detail", "error", "fields", "body")

    def __init__(self, status: int, code: str | None, detail: str = "", error: str = "",
                 fields: list[tuple[str, str]] | None = None, body: bytes = b"") -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.error = error
        self.fields = fields or []
        self.body = body

    def __repr__(self) -> str:
        return f"<Failure {self.status} {self.code} {self.detail}>"


Outcome = Consumer | Failure | None
Result = Outcome | Awaitable[Outcome]


@mypyc_attr(allow_interpreted_subclasses=True)
class Method:
    """Base of the methods; `kind` is its name in config, logs and metrics."""

    kind = "method"

    def challenge(self) -> str | None:
        """The WWW-Authenticate challenge this method answers a 401 with, if any."""
        return None

    def authenticate(self, req: Request, now: float) -> Result:
        raise NotImplementedError

    def close(self) -> None:
        """Forget background work (a reload dropped the filter)."""
