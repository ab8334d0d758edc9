"""The `basic` method: RFC 7617 user and password against consumers' credentials."""

from __future__ import annotations

import binascii
from base64 import b64decode

from edgeward.auth.config import BasicConfig
from edgeward.auth.context import AuthContext
from edgeward.auth.method import Failure, Method, Result
from edgeward.auth.secrets import same
from edgeward.filters.api import Request

_BAD = "the user name or password is not valid"


class BasicMethod(Method):
    kind = "basic"

    def __init__(self, cfg: BasicConfig, ctx: AuthContext, realm: str) -> None:
        self.ctx = ctx
        self.realm = cfg.realm or realm

    def challenge(self) -> str:
        return f'Basic realm="{self.realm}", charset="UTF-8"'

    def authenticate(self, req: Request, now: float) -> Result:
        value = req.headers.get("authorization")
        if value is None:
            return None
        scheme, _, encoded = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, colon, password = b64decode(encoded.strip(), validate=True).decode(
                "utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return Failure(401, "unauthenticated", "the Basic credentials are malformed")
        if not colon:
            return Failure(401, "unauthenticated", "the Basic credentials are malformed")
        found = self.ctx.consumers.index.by_username.get(user)
        if found is None:
            same(b"\0" * 32, password)  # same work as a known user: no timing tells users apart
            return Failure(401, "unauthenticated", _BAD)
        consumer, stored = found
        if not same(stored, password):
            return Failure(401, "unauthenticated", _BAD)
        # The upstream gets no gateway credential.
        req.headers.remove("authorization")
        return consumer
