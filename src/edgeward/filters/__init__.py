"""The public filter API: write a filter as a Python class, name it in the config.

    from edgeward.filters import Filter, Reply, Request, Response

See `edgeward.filters.api` and docs/filters.md.
"""

from edgeward.filters.api import (
    ORDER_AUTH,
    ORDER_CACHE,
    ORDER_CONCURRENCY,
    ORDER_CORS,
    ORDER_IP,
    ORDER_RATE_LIMIT,
    ORDER_REWRITE,
    ORDER_SPLIT,
    ORDER_USER,
    Filter,
    Reply,
    Request,
    RequestResult,
    Response,
)
from edgeward.http.fields import Headers
from edgeward.http.message import NO_BODY, STREAMED

__all__ = [
    "NO_BODY", "ORDER_AUTH", "ORDER_CACHE", "ORDER_CONCURRENCY", "ORDER_CORS", "ORDER_IP",
    "ORDER_RATE_LIMIT", "ORDER_REWRITE", "ORDER_SPLIT", "ORDER_USER", "STREAMED", "Filter",
    "Headers", "Reply", "Request", "RequestResult", "Response",
]
