"""Issue 18, finding 9: with `--workers 2`, a worker restarted after a crash serves what the
others serve, and persisting `POST /config` keeps the config file's mode.

Before: after `POST /config` removed a route, a SIGKILLed worker came back serving the text the
supervisor read at start (the removed route answered again from it only), and the file went
from 0644 to 0600. Now the restarted worker starts from the file as it is, every answer reflects
the change, and the file stays 0644.
"""

from __future__ import annotations

import os
import signal
import stat

from tests.observability.obskit import AdminGateway, get, wait_until
from tests.support.origin import Origin

ANSWERS = 40  # fresh connections: SO_REUSEPORT spreads them over both workers


def statuses(port: int) -> set[tuple[int, int]]:
    """(status of /old, status of /new) over many fresh connections."""
    return {(get(port, "/old/x").status, get(port, "/new/x").status) for _ in range(ANSWERS)}


def test_a_respawned_worker_serves_the_posted_config() -> None:
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams:
  o: {{targets: ["{origin.address}"]}}
routes:
  - {{name: old, match: {{path_prefix: /old}}, upstream: o}}
""", workers=2) as gw:
        path = gw.gw.workdir / "edgeward.yaml"
        os.chmod(path, 0o644)
        assert statuses(gw.port) == {(200, 404)}

        changed = path.read_text().replace("name: old, match: {path_prefix: /old}",
                                           "name: new, match: {path_prefix: /new}")
        reply = gw.admin("POST", "/config", changed)
        assert (reply.status, reply.json()) == (200, {"applied": True})
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        wait_until(lambda: statuses(gw.port) == {(404, 200)}, timeout=15,
                   what="both workers on the posted config")

        before = set(gw.gw.children())
        assert len(before) == 2
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(set(gw.gw.children()) - before) == 1
                   and len(gw.gw.children()) == 2, timeout=15, what="the worker restarted")
        wait_until(lambda: get(gw.port, "/new/x").status in (200, 404), what="serving")
        for _ in range(3):
            assert statuses(gw.port) == {(404, 200)}
