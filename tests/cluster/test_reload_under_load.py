"""100 config reloads while keep-alive clients keep a gateway busy: not one request fails.

Requests in flight finish on the snapshot they started with and the listener never closes,
so a reload is invisible to clients (DESIGN.md: "Nothing lost: a config reload ... never
drops an accepted request"). Both reload paths are exercised: POST /config on the admin
API (90 times) and edits of the watched file (10 times; the file is polled once a second,
so more would only make the test slower).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from pathlib import Path

from tests.cluster._cluster import (
    KeepAliveClient,
    get_json,
    http_post,
    metric_value,
    wait_admin,
    wait_until,
)
from tests.support.gateway import GatewayProcess, free_port
from tests.support.origin import Origin

CONNECTIONS = 8
RELOADS = 100
FILE_EDITS = 10


def config(port: int, admin: int, origin: str, variant: int) -> str:
    """Two valid configs: they differ in a route timeout, the balancer and an extra route,
    so every reload compiles a different snapshot (not an "unchanged" no-op)."""
    balance = "round_robin" if variant == 0 else "least_request"
    extra = "" if variant == 0 else (
        "  - {name: extra, match: {path_prefix: /extra}, upstream: origin}\n")
    return (f"listen: 127.0.0.1:{port}\nadmin: 127.0.0.1:{admin}\n"
            f"upstreams:\n  origin: {{targets: ['{origin}'], balance: {balance}}}\n"
            "routes:\n"
            f"  - {{name: load, match: {{path_prefix: /load}}, upstream: origin, "
            f"timeout: {5 + variant}s}}\n" + extra)


class Load:
    """CONNECTIONS keep-alive clients in a thread's event loop, busy until stop()."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _client(self) -> None:
        client = KeepAliveClient(self.port)
        try:
            while not self._stop.is_set():
                try:
                    code, body = await client.get("/load")
                except Exception as exc:  # every failure is recorded, none stops the load
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    client.close()
                    continue
                self.statuses[code] += 1
                if code != 200:
                    self.failures.append(f"{code}: {body[:200]!r}")
        finally:
            client.close()

    async def _run(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(CONNECTIONS)))

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_a_hundred_reloads_under_load_fail_no_request(origin: Origin, tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    path = tmp_path / "edgeward.yaml"
    texts = [config(port, admin, origin.address, v) for v in (0, 1)]
    path.write_text(texts[0])
    with GatewayProcess(["run", "-c", str(path)], port, tmp_path) as gw:
        wait_admin(admin)
        load = Load(port).start()
        try:
            time.sleep(0.3)
            # POST /config: applied before the answer
            for i in range(1, RELOADS - FILE_EDITS + 1):
                code, body = http_post(admin, "/config", texts[i % 2])
                assert code == 200 and json.loads(body)["applied"], (code, body)
                time.sleep(0.01)
            # the watched file: wait for each edit to be served before the next
            # (the file still holds texts[0] and the last POST applied texts[0]: start at 1)
            for i in range(1, FILE_EDITS + 1):
                path.write_text(texts[i % 2])
                wait_until(lambda v=i % 2: _variant(admin) == v, timeout=5)   # type: ignore[misc]
            applied = metric_value(admin, "edgeward_config_reloads_total", 'result="ok"')
            time.sleep(0.3)
        finally:
            load.stop()
        assert gw.proc is not None and gw.proc.poll() is None
    assert applied >= RELOADS, applied      # the initial load counts as one more
    served = load.statuses[200]
    print(f"{served} requests served during {RELOADS} reloads, none failed")
    assert load.failures == [], (len(load.failures), load.failures[:5], load.statuses)
    assert served > 1000, f"only {served} requests: the load was not continuous"


def _variant(admin: int) -> int:
    """Which of the two configs is in force: variant 1 has the route `extra`."""
    routes = get_json(admin, "/routes")
    assert isinstance(routes, list)
    return int(any(r["name"] == "extra" for r in routes))
