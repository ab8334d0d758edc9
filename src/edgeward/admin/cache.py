"""POST /cache/purge: the request body read into purges (docs/admin.md, "Cache").

    {"keys": ["api.example.com/users/7"], "prefixes": ["api.example.com/users/"],
     "tags": ["user-7"], "all": false}

A key is a cache entry's base: host, path and the query the route keeps
(edgeward.cache.key); a key purges every variant stored under it.
"""

from __future__ import annotations

import json
from typing import Any, Final

# Purges one request may carry: a CMS publishing a page purges a handful of keys and tags;
# a larger batch belongs in a prefix or a tag (Fastly's batch purge takes 256 keys).
MAX_PURGES: Final = 256
_LISTS: Final = (("keys", "key"), ("prefixes", "prefix"), ("tags", "tag"))


def parse_purge(body: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """(purges as (kind, argument), problems)."""
    try:
        raw: Any = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        return [], [f"body is not JSON: {exc}"]
    if not isinstance(raw, dict):
        return [], ['send a JSON object: {"keys": [...], "prefixes": [...], "tags": [...]}']
    problems = [f"{k}: unknown member (keys, prefixes, tags, all)" for k in raw
                if k not in ("keys", "prefixes", "tags", "all")]
    purges: list[tuple[str, str]] = []
    for member, kind in _LISTS:
        values = raw.get(member, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            problems.append(f"{member}: expected a list of non-empty strings")
            continue
        purges.extend((kind, v) for v in values)
    everything = raw.get("all", False)
    if not isinstance(everything, bool):
        problems.append("all: expected true or false")
    elif everything:
        purges.append(("flush", ""))
    if not purges and not problems:
        problems.append("nothing to purge: give keys, prefixes, tags or all: true")
    if len(purges) > MAX_PURGES:
        problems.append(f"{len(purges)} purges in one request; at most {MAX_PURGES}")
    return purges, problems
