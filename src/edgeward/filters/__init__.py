"""The public filter API: write a filter as a Python class, name it in the config.

    from edgeward.filters import Filter, Reply, Request, Response

See `edgeward.filters.api` and docs/filters.md.
"""

# The built-in kinds register themselves with edgeward.filters.config when imported.
from edgeward.filters import builtin  # noqa: E402,F401,I001
from edgeward.filters.api import (
    ORDER_AUTH,
    ORDER_CACHE,
    ORDER_COMPRESS,
    ORDER_CONCURRENCY,
    ORDER_CORS,
    ORDER_FAULT,
    ORDER_IP,
    ORDER_MIRROR,
    ORDER_RATE_LIMIT,
    ORDER_RESPOND,
    ORDER_REWRITE,
    ORDER_SPLIT,
    ORDER_USER,
    Filter,
    Reply,
    ReplyOutput,
    Request,
    RequestResult,
    Response,
    WebSocket,
    WebSocketHandler,
)
from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, STREAMED

__all__ = [
    "NO_BODY", "ORDER_AUTH", "ORDER_CACHE", "ORDER_COMPRESS", "ORDER_CONCURRENCY", "ORDER_CORS",
    "ORDER_FAULT", "ORDER_IP", "ORDER_MIRROR", "ORDER_RATE_LIMIT", "ORDER_RESPOND",
    "ORDER_REWRITE", "ORDER_SPLIT", "ORDER_USER", "STREAMED", "Filter", "Headers", "Reply",
    "ReplyOutput", "Request", "RequestResult", "Response", "WebSocket", "WebSocketHandler",
]
