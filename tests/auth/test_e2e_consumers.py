"""End to end: consumers from etcd (/edgeward/consumers/NAME) followed by a watch, consumers
in the file hot-reloaded, the consumer in the access log, and refused consumer configs that
never show a secret."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.auth.authkit import request, seen_headers, sha256_ref
from tests.fixtures_etcd import EtcdServer, etcd_fixture
from tests.support.gateway import GatewayProcess, edgeward_command
from tests.support.origin import Origin

__all__ = ["etcd_fixture"]   # the fixture is used by name

PREFIX = "/edgeward/consumers/"


def eventually(probe: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.05)
    return probe()


def test_consumers_from_etcd_come_and_go(etcd: EtcdServer) -> None:
    carol = "ck-" + os.urandom(8).hex()
    text = f"""
listen: {{listen}}
etcd: {{endpoints: ["{etcd.url}"], consumers_prefix: {PREFIX}}}
upstreams:
  app: {{targets: [%s]}}
routes:
  - match: {{path_prefix: /}}
    upstream: app
    filters: [{{api_key: {{}}}}]
"""
    etcd.put(PREFIX + "dave", json.dumps({"api_keys": [sha256_ref("dave-key")]}))
    with Origin() as origin, GatewayProcess.config(text % origin.address) as gw:
        def as_(key: str) -> int:
            return request(gw.port, "/", {"apikey": key}).status

        assert eventually(lambda: as_("dave-key") == 200)     # read at start
        assert as_(carol) == 401
        etcd.put(PREFIX + "carol", f"api_keys: ['{sha256_ref(carol)}']\ngroups: [ops]\n")
        assert eventually(lambda: as_(carol) == 200)           # followed by the watch
        answer = request(gw.port, "/", {"apikey": carol})
        assert seen_headers(answer)["x-consumer-name"] == ["carol"]
        etcd.put(PREFIX + "broken", "api_keys: 12")            # refused, the others stay
        etcd.etcdctl("del", PREFIX + "carol")
        assert eventually(lambda: as_(carol) == 401)
        assert as_("dave-key") == 200
        assert eventually(lambda: "etcd /edgeward/consumers/broken: api_keys: expected a list"
                          in gw.stderr_text())


def test_file_consumers_reload_and_the_access_log_names_the_consumer(tmp_path: Path) -> None:
    log_path = tmp_path / "access.log"
    base = """
listen: {listen}
access_log: {path: %s, flush_interval: 50ms}
upstreams:
  app: {targets: [%s]}
consumers:
  %s: {api_keys: ["%s"]}
routes:
  - match: {path_prefix: /}
    upstream: app
    filters: [{api_key: {}}]
"""
    with Origin() as origin:
        first = base % (log_path, origin.address, "erin", sha256_ref("erin-key"))
        with GatewayProcess.config(first) as gw:
            assert request(gw.port, "/", {"apikey": "erin-key"}).status == 200
            config = gw.workdir / "edgeward.yaml"
            listen = config.read_text().split("\n")[1]
            second = base % (log_path, origin.address, "frank", sha256_ref("frank-key"))
            config.write_text(second.replace("listen: {listen}", listen))
            assert eventually(lambda: request(gw.port, "/", {"apikey": "frank-key"})
                              .status == 200)
            assert request(gw.port, "/", {"apikey": "erin-key"}).status == 401
            assert eventually(lambda: log_path.exists() and "frank" in log_path.read_text())
            lines = [json.loads(x) for x in log_path.read_text().splitlines()]
    assert {line["consumer"] for line in lines} >= {"erin", "frank", None}


def test_a_refused_consumer_config_names_the_key_not_the_secret(tmp_path: Path) -> None:
    secret = "s3cr3t-" + os.urandom(6).hex()
    config = tmp_path / "bad.yaml"
    config.write_text(f"""
upstreams:
  app: {{targets: [127.0.0.1:9]}}
consumers:
  eve: {{api_keys: ["sha256:{secret}"], password: "env:EDGEWARD_TEST_UNSET_VARIABLE"}}
  "bad name!": {{}}
routes:
  - {{match: {{path_prefix: /}}, upstream: app, filters: [{{api_key: {{}}}}]}}
""")
    out = subprocess.run([*edgeward_command(), "validate", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert "consumers.eve.api_keys[0]: sha256: must be followed by 64 hex digits" in out.stderr
    assert secret not in out.stderr + out.stdout
    config.write_text(config.read_text().replace(f'api_keys: ["sha256:{secret}"], ', ""))
    out = subprocess.run([*edgeward_command(), "validate", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert "consumers.bad name!: a consumer name uses ASCII letters" in out.stderr
    env = {k: v for k, v in os.environ.items() if k != "EDGEWARD_TEST_UNSET_VARIABLE"}
    config.write_text(f"""
listen: 127.0.0.1:1
upstreams:
  app: {{targets: [127.0.0.1:9]}}
consumers:
  eve: {{api_keys: ["{secret}"], password: "env:EDGEWARD_TEST_UNSET_VARIABLE"}}
routes:
  - {{match: {{path_prefix: /}}, upstream: app, filters: [{{api_key: {{}}}}]}}
""")
    run = subprocess.run([*edgeward_command(), "run", "-c", str(config)], capture_output=True,
                         text=True, timeout=60, env=env)
    assert run.returncode != 0
    assert ("consumers.eve.password: environment variable EDGEWARD_TEST_UNSET_VARIABLE "
            "is not set") in run.stderr
    assert secret not in run.stderr + run.stdout
