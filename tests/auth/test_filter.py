"""The auth filter's decision over its methods: order, first success wins, first refusal
answers, challenges, allow-lists, the headers it owns (no sockets: heads made in memory)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edgeward.auth.config import AuthConfig
from edgeward.auth.consumer import Consumer
from edgeward.auth.filter import AuthFilter
from edgeward.auth.method import NOBODY, Failure, Method, Result
from edgeward.filters.api import Reply, Request
from edgeward.proxy.subrequest import make_head
from edgeward.structs import load_struct

ALICE = Consumer("alice", frozenset({"staff"}))
BOB = Consumer("bob")


class Fixed(Method):
    def __init__(self, kind: str, outcome: Any, challenge: str | None = None,
                 wait: bool = False) -> None:
        self.kind = kind
        self.outcome = outcome
        self._challenge = challenge
        self.wait = wait
        self.asked = 0

    def challenge(self) -> str | None:
        return self._challenge

    def authenticate(self, req: Request, now: float) -> Result:
        self.asked += 1
        if self.wait:
            async def later() -> Any:
                await asyncio.sleep(0)
                return self.outcome
            return later()
        return self.outcome


def auth(methods: list[Method], **cfg: Any) -> AuthFilter:
    config = load_struct(AuthConfig, {"methods": [{"api_key": {}}], **cfg})
    return AuthFilter(config, methods)


def head(**headers: str) -> Request:
    return make_head("GET", "/x", "api", list(headers.items()))


def run(result: Any) -> Any:
    if result is None or isinstance(result, Reply):
        return result
    return asyncio.run(result)


def test_first_success_wins_and_later_methods_are_not_asked() -> None:
    a, b = Fixed("jwt", None), Fixed("api_key", ALICE)
    c = Fixed("basic", BOB)
    req = head(**{"x-consumer-name": "mallory"})
    assert run(auth([a, b, c]).on_request(req)) is None
    assert req.consumer is ALICE and req.auth_result == ("api_key", "ok")
    assert (a.asked, b.asked, c.asked) == (1, 1, 0)
    assert req.headers.get_all("x-consumer-name") == ["alice"]


@pytest.mark.parametrize("wait", [False, True])
def test_a_refusal_lets_the_next_method_try_then_answers(wait: bool) -> None:
    refused = Failure(401, "unauthenticated", "the token has expired", "invalid_token")
    f = auth([Fixed("jwt", refused, 'Bearer realm="edgeward"', wait=wait),
              Fixed("api_key", None, 'Key realm="edgeward"', wait=wait)])
    req = head()
    reply = run(f.on_request(req))
    assert isinstance(reply, Reply) and reply.status == 401 and reply.code == "unauthenticated"
    assert reply.fields == [
        (b"www-authenticate", b'Bearer realm="edgeward", error="invalid_token", '
                              b'error_description="the token has expired"'),
        (b"www-authenticate", b'Key realm="edgeward"')]
    assert req.auth_result == ("jwt", "unauthenticated") and req.consumer is None
    ok = auth([Fixed("jwt", refused, wait=wait), Fixed("api_key", BOB, wait=wait)])
    assert run(ok.on_request(req2 := head())) is None and req2.consumer is BOB


def test_no_credential_at_all_is_401_with_every_challenge() -> None:
    req = head()
    reply = run(auth([Fixed("basic", None, "Basic x"), Fixed("api_key", None, "Key y")])
                .on_request(req))
    assert isinstance(reply, Reply) and reply.status == 401
    assert [v for _, v in reply.fields] == [b"Basic x", b"Key y"]
    assert req.auth_result == ("none", "unauthenticated")


def test_allow_lists_and_nobody() -> None:
    staff = {"allow": {"groups": ["staff"], "consumers": ["carol"]}}
    assert run(auth([Fixed("jwt", ALICE)], **staff).on_request(head())) is None
    reply = run(auth([Fixed("jwt", BOB)], **staff).on_request(req := head()))
    assert isinstance(reply, Reply) and reply.status == 403 and reply.code == "forbidden"
    assert req.auth_result == ("jwt", "forbidden")
    assert run(auth([Fixed("forward", NOBODY)]).on_request(req := head())) is None
    assert req.consumer is None and req.auth_result == ("forward", "ok")
    assert isinstance(run(auth([Fixed("forward", NOBODY)], **staff).on_request(head())), Reply)


def test_a_services_refusal_goes_back_as_it_came() -> None:
    denied = Failure(302, None, fields=[("location", "/login")], body=b"go")
    reply = run(auth([Fixed("forward", denied)]).on_request(req := head()))
    assert isinstance(reply, Reply) and reply.status == 302 and reply.code is None
    assert reply.body == b"go" and reply.fields == [(b"location", b"/login")]
    assert req.auth_result == ("forward", "denied")


def test_no_consumer_header_when_switched_off() -> None:
    req = head(**{"x-consumer-name": "mallory"})
    assert run(auth([Fixed("jwt", ALICE)], consumer_header=None).on_request(req)) is None
    assert req.headers.get_all("x-consumer-name") == ["mallory"]  # not ours: left alone
