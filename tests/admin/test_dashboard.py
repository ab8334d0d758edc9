"""The dashboard page, rendered by a real headless Chromium against a live admin server."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from adminkit import MemoryBackend  # noqa: E402

from edgeward.admin.server import AdminServer  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="/usr/bin/chromium is absent (the test command apt-installs it)")
async def test_dashboard_renders_live_figures(backend: MemoryBackend) -> None:
    srv = AdminServer(backend, token=None, series_step=0.2, series_horizon=30)
    await srv.start("127.0.0.1", 0)
    backend.endpoints["orders"][1].ejected = True
    await backend.apply_config("routes: [{name: x, upstream: nowhere}]")  # refused
    backend.canaries = [{
        "route": "orders_api", "stable": "orders", "canary": "orders-v2", "phase": "rolled_back",
        "weight": 0, "history": [
            {"time": 1.7e9, "decision": "start", "weight_before": 0, "weight": 10,
             "reason": "started"},
            {"time": 1.7e9 + 60, "decision": "advance", "weight_before": 10, "weight": 20,
             "reason": "passed"},
            {"time": 1.7e9 + 70, "decision": "rollback", "weight_before": 20, "weight": 0,
             "reason": "error rate up 4.00 points"}]}]
    async def play() -> None:  # ~150 req/s on orders_api, 10 % errors, 40 ms each
        tick = 0
        while True:
            backend.traffic("orders_api", "orders", 15, errors=1 + tick % 2, seconds=0.04)
            tick += 1
            await asyncio.sleep(0.1)

    player = asyncio.get_running_loop().create_task(play())
    try:
        await asyncio.sleep(1.0)  # a few samples before the page loads
        with tempfile.TemporaryDirectory() as profile:
            proc = await asyncio.create_subprocess_exec(
                str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
                "--virtual-time-budget=8000", "--dump-dom", f"http://127.0.0.1:{srv.port}/",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), 60)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        dom = out.decode()
    finally:
        player.cancel()
        await asyncio.gather(player, return_exceptions=True)
        await srv.close()

    assert 'data-name="orders_api"' in dom and 'data-name="users_api"' in dom
    rate = re.search(r'data-k="routes:orders_api:rps">([0-9.]+)<', dom)
    assert rate is not None and float(rate.group(1)) > 10, dom[:2000]
    err = re.search(r'data-k="routes:orders_api:err">([0-9.]+)<', dom)
    assert err is not None and 5 <= float(err.group(1)) <= 15  # 10 % errors played
    assert 'data-k="upstreams:orders:rps"' in dom
    assert re.search(r'data-endpoint="127.0.0.1:8002">.*?ejected.*?open', dom)
    assert ">refused<" in dom and ">applied<" in dom
    canary = re.search(r'data-canary="orders_api">.*?</tr>', dom)
    assert canary is not None and ">rolled_back<" in canary.group(0)
    assert 'data-k="canary:orders_api:weight">0<' in canary.group(0)
    assert "error rate up 4.00 points" in canary.group(0)
    assert re.search(r'<span id="status"[^>]*>live · 0.2s steps', dom)
