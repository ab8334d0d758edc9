"""A minimal HTTP/1.1 JSON client for the device tests and benchmarks (one request per
connection, `Connection: close`), so that no HTTP library is needed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

TIMEOUT = 10.0


async def call(port: int, method: str, path: str, body: object | bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """(status, lower-case headers, the JSON body or None)."""
    raw = body if isinstance(body, bytes) else (
        b"" if body is None else json.dumps(body).encode())
    fields = {"host": "devices", "connection": "close", **(headers or {})}
    if body is not None:
        fields["content-type"] = "application/json"
        fields["content-length"] = str(len(raw))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head.encode() + b"\r\n" + raw)
            data = await reader.read()
        finally:
            writer.close()
    top, _, payload = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    got = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return status, got, json.loads(payload) if payload else None
