"""Issue 18, low: the per-worker metrics directory is private and a planted file cannot break
/metrics.

Before: the workers shared `/tmp/edgeward-metrics-<pid>` (predictable, created with
`exist_ok`, no owner or mode check), and a file planted there made every `/metrics` answer 500.
Now the directory is made by mkdtemp (random name, 0700), and a scrape skips any file that does
not merge: /metrics keeps answering with the workers' figures.
"""

from __future__ import annotations

import glob
import json
import os
import stat
import tempfile

from tests.observability.obskit import AdminGateway, get, value, wait_until
from tests.support.origin import Origin

REQ = "edgeward_requests_total"
PLANTED = {
    "worker-90.json": {"snapshot": {"version": 1, "families": "not a list"}},
    "worker-91.json": {"pid": 1, "written_at": 0, "snapshot": {"version": 1, "families": [
        {"name": REQ, "type": "gauge", "help": "x", "labels": [], "samples": [[[], 1e9]]}]}},
    "retired-92-1.json": {"snapshot": {"families": [{"name": "x"}]}},
}


def test_the_metrics_directory_is_private_and_planted_files_are_skipped() -> None:
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams: {{o: {{targets: ["{origin.address}"]}}}}
routes: [{{name: all, upstream: o}}]
""", workers=2) as gw:
        wait_until(lambda: len(gw.gw.children()) == 2, what="two workers")
        (directory,) = glob.glob(f"{tempfile.gettempdir()}/edgeward-metrics-{gw.gw.pid}*")
        st = os.lstat(directory)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
        assert os.path.basename(directory) != f"edgeward-metrics-{gw.gw.pid}"  # not guessable

        for name, doc in PLANTED.items():
            with open(os.path.join(directory, name), "w") as fh:
                json.dump(doc, fh)
        for i in range(20):
            assert get(gw.port, f"/x/{i}").status == 200
        for _ in range(8):  # whichever worker answers
            wait_until(lambda: value(gw.scrape(), REQ, route="all", upstream="o",
                                     code="200") == 20, timeout=5, what="both workers summed")
