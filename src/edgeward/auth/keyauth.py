"""The `api_key` method: a key in a header or query parameter, found by its digest.

The key is removed before the request goes upstream (the header, and the parameter from the
query string), so an upstream never sees a gateway credential.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from edgeward.auth.config import ApiKeyConfig
from edgeward.auth.context import AuthContext
from edgeward.auth.method import Failure, Method, Result
from edgeward.auth.secrets import digest
from edgeward.filters.api import Request


class ApiKeyMethod(Method):
    kind = "api_key"

    def __init__(self, cfg: ApiKeyConfig, ctx: AuthContext, realm: str) -> None:
        self.header = cfg.header.lower() if cfg.header else None
        self.param = cfg.query
        self.ctx = ctx
        self.realm = realm

    def challenge(self) -> str:
        return f'Key realm="{self.realm}"'  # Kong key-auth's challenge

    def authenticate(self, req: Request, now: float) -> Result:
        key = None
        if self.header is not None:
            key = req.headers.get(self.header)
            if key is not None:
                req.headers.remove(self.header)
        if self.param is not None:
            in_query = req.query(self.param)
            if in_query is not None:
                key = key or in_query
                self._drop_param(req)
        if not key:
            return None
        consumer = self.ctx.consumers.index.by_key.get(digest(key))
        if consumer is None:
            return Failure(401, "unauthenticated", "the API key is not valid")
        return consumer

    def _drop_param(self, req: Request) -> None:
        pairs = parse_qsl(req.query_string, keep_blank_values=True)
        req.query_string = urlencode([(k, v) for k, v in pairs if k != self.param])
