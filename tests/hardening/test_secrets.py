"""Issue 18, finding 8: secret values never leave the gateway.

Before: `/config` showed `redis://...?password=...` and an OTLP endpoint with its userinfo and
token; a refused config's problem text echoed `admin.token: expected a string, got
98765432109876` and a Redis URL with its password, and that text was served by
`/reloads` (unauthenticated), written to the log and drawn on the dashboard. Now every one of
those paths shows `<redacted>` instead.
"""

from __future__ import annotations

from tests.observability.obskit import AdminGateway
from tests.support.gateway import free_port
from tests.support.origin import Origin

TOKEN = "adm-tok-5b8e0c"
REDIS_PW = "qry-pw-31f7a"
OTLP_USER = "otlp-user-9c2d"
OTLP_TOKEN = "otlp-tok-44e1"
BAD_TOKEN = "98765432109876"
BAD_REDIS_PW = "bad-pw-70aa3"
SECRETS = (TOKEN, REDIS_PW, OTLP_USER, OTLP_TOKEN, BAD_TOKEN, BAD_REDIS_PW)
AUTH = {"authorization": f"Bearer {TOKEN}"}


def test_config_view_problems_reloads_and_log_show_no_secret() -> None:
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: {{listen: "{{admin}}", token: {TOKEN}}}
redis: "redis://127.0.0.1:{free_port()}/0?password={REDIS_PW}"
tracing:
  otlp_endpoint: "http://{OTLP_USER}@127.0.0.1:{free_port()}/?token={OTLP_TOKEN}"
upstreams:
  o: {{targets: ["{origin.address}"]}}
routes:
  - {{name: api, upstream: o}}
""") as gw:
        shown = gw.admin("GET", "/config")
        assert shown.status == 200
        doc = shown.json()
        assert doc["admin"]["token"] == "<redacted>"
        assert doc["redis"].endswith("/0?password=<redacted>")
        assert doc["tracing"]["otlp_endpoint"].startswith("http://<redacted>@127.0.0.1:")

        text = (gw.gw.workdir / "edgeward.yaml").read_text()
        refused = [
            text.replace(f"token: {TOKEN}", f"token: {BAD_TOKEN}"),
            text.replace("redis: \"redis://", f"redis: \"http://edge:{BAD_REDIS_PW}@h:1/x#"),
        ]
        problems: list[str] = []
        for bad in refused:
            reply = gw.admin("POST", "/config", bad, AUTH)
            assert reply.status == 400, reply.body
            problems += reply.json()["problems"]
        assert any("admin.token: expected a string, got <redacted>" in p for p in problems)
        assert any("redis.url: must start with redis://" in p for p in problems), problems

        views = [shown.body.decode(), "\n".join(problems),
                 gw.admin("GET", "/reloads").body.decode(), gw.gw.stderr_text()]
        assert "config refused" in views[3]  # the refusals were logged
        for secret in SECRETS:
            for where, view in zip(("/config", "problems", "/reloads", "log"), views,
                                   strict=True):
                assert secret not in view, (secret, where)
