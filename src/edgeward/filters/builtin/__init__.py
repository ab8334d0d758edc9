"""The built-in filter kinds' configs, registered with `edgeward.filters.config` on import.

Each module here holds one kind's (or a family's) config dataclasses, read and checked at
load with key paths, and registers how the filter is made from them. The filters themselves
live one level up (`edgeward.filters.headers`, ...), where the hot ones are compiled.
"""

from edgeward.filters.builtin import (  # noqa: F401
    cache,
    compress,
    cors,
    fault,
    grpc_web,
    headers,
    ip,
    mirror,
    reply,
    rewrite,
    subset,
)
