"""Issue 18, finding 7: a reload applies `admin:`, `server:`, `access_log:` and `tracing:`, or
refuses what needs a restart.

Before: a POSTed config adding `admin.token`, `server.trusted_proxies` and
`max_header_bytes: 2KiB` answered `applied: true` and `/config` showed them, but a token-less
POST still applied, a 4 KB header still got 200 and X-Forwarded-For from the trusted proxy was
still replaced; a rotated token left the old one valid. Now each takes effect with the next
request, and an admin listen change is refused with its key path.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.observability.obskit import AdminGateway, call, get, wait_until
from tests.support.gateway import free_port
from tests.support.origin import Origin

BASE = """
listen: "{listen}"
admin: {admin}
upstreams:
  o: {{targets: ["{origin}"]}}
routes:
  - {{name: api, upstream: o}}
"""


def forwarded_for(reply_body: bytes) -> list[str]:
    echo = json.loads(reply_body)
    return [v for n, v in echo["headers"] if n.lower() == "x-forwarded-for"]


def test_reloaded_server_admin_access_log_and_tracing_apply_at_once(tmp_path: Path) -> None:
    log_path = tmp_path / "access.jsonl"
    with Origin() as origin, AdminGateway(BASE.format(
            listen="{listen}", admin='"{admin}"', origin=origin.address)) as gw:
        text = (gw.gw.workdir / "edgeward.yaml").read_text()
        admin_at = f"127.0.0.1:{gw.admin_port}"
        big = {"x-big": "b" * 4096}
        xff = {"x-forwarded-for": "203.0.113.7"}
        assert get(gw.port, "/echo", big).status == 200
        assert forwarded_for(get(gw.port, "/echo", xff).body) == ["127.0.0.1"]

        hardened = text.replace(f'admin: "{admin_at}"',
                                f'admin: {{listen: "{admin_at}", token: tok-one}}') + f"""
server: {{max_header_bytes: 2KiB, trusted_proxies: [127.0.0.1/32]}}
access_log: {{path: "{log_path}", flush_interval: 50ms}}
tracing: {{sample_ratio: 1.0}}
"""
        applied = gw.admin("POST", "/config", hardened)
        assert (applied.status, applied.json()) == (200, {"applied": True})

        # admin.token: a token-less POST is refused now.
        assert gw.admin("POST", "/config", hardened + "# x\n").status == 401
        # server.max_header_bytes: a 4 KB header is too large now.
        assert get(gw.port, "/echo", big).status == 431
        # server.trusted_proxies: XFF from 127.0.0.1 is extended, not replaced.
        echo = get(gw.port, "/echo", xff)
        assert forwarded_for(echo.body) == ["203.0.113.7, 127.0.0.1"]
        # tracing: the request was traced (a traceparent went upstream).
        assert any(n.lower() == "traceparent" for n, _ in json.loads(echo.body)["headers"])
        # access_log: the request was logged to the new file.
        wait_until(lambda: log_path.exists() and "/echo" in log_path.read_text(),
                   what="access log line")

        # A rotated token: the old one stops working at once.
        rotated = hardened.replace("token: tok-one", "token: tok-two")
        ok = gw.admin("POST", "/config", rotated, {"authorization": "Bearer tok-one"})
        assert ok.status == 200
        for token, status in (("tok-one", 401), ("tok-two", 200)):
            reply = gw.admin("POST", "/config", rotated + f"# {token}\n",
                             {"authorization": f"Bearer {token}"})
            assert reply.status == status, token

        # admin.listen needs a restart: refused with its key path, nothing changes.
        moved = rotated.replace(admin_at, f"127.0.0.1:{free_port()}")
        refused = gw.admin("POST", "/config", moved, {"authorization": "Bearer tok-two"})
        assert refused.status == 400
        assert any("admin.listen: changing the admin listen address needs a restart" in p
                   for p in refused.json()["problems"]), refused.json()
        assert call(gw.admin_port, "GET", "/healthz").status == 200
