"""Issue 18, finding 3: `path_regex` must not backtrack.

Before: with Python `re`, the pattern below against `/v1/users/` + 25 x `a` + `!` took 2.2 s and
a concurrent request waited; each added character doubles that, so the 40 sent here would hold
the worker for about 20 hours. Now RE2 matches in linear time: the hostile request falls
through to the catch-all route and an honest request sent while it is in flight is answered
(each call below gives up after 30 s).
"""

from __future__ import annotations

import threading

from tests.observability.obskit import call
from tests.support.gateway import GatewayProcess
from tests.support.origin import Origin

HOSTILE = "/v1/users/" + "a" * 40 + "!"


def test_a_backtracking_path_is_answered_and_does_not_hold_others_up() -> None:
    with Origin() as origin, GatewayProcess.config(f"""
listen: "{{listen}}"
upstreams:
  o: {{targets: ["{origin.address}"]}}
routes:
  - name: users
    match: {{path_regex: "/v1/users/([A-Za-z0-9_-]+/?)+"}}
    upstream: o
  - name: rest
    upstream: o
""") as gw:
        answers: dict[str, int] = {}

        def hostile() -> None:
            answers["hostile"] = call(gw.port, "GET", HOSTILE, timeout=30).status

        thread = threading.Thread(target=hostile)
        thread.start()
        answers["honest"] = call(gw.port, "GET", "/v1/users/abc/", timeout=30).status
        thread.join(35)
        assert answers == {"hostile": 200, "honest": 200}
        paths = [r.target for r in origin.requests]
        assert HOSTILE in paths and "/v1/users/abc/" in paths
