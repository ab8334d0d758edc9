"""Hot reload from the config sources, end to end: `edgeward run -c etcd://...` against a
real etcd, and `edgeward run -c FILE` with an in-place edit and a ConfigMap-style symlink
swap. New routes serve within about a second; an invalid config is refused and visible
(/reloads, metrics) while the old one keeps serving; etcd down at start is a clean exit 1;
etcd restarted under a running gateway is survived.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cluster._cluster import (
    gateway_from_etcd,
    get_json,
    http_get,
    metric_value,
    wait_admin,
    wait_until,
)
from tests.fixtures_etcd import EtcdServer, etcd_fixture, etcd_private_fixture
from tests.support.gateway import GatewayProcess, edgeward_command, free_port
from tests.support.origin import Origin

__all__ = ["etcd_fixture", "etcd_private_fixture"]   # fixtures used by name

KEY = "/edgeward/config"
RELOAD_DEADLINE = 1.0     # the brief: a written config serves within 1 s


def config(port: int, admin: int, origin: str, routes: list[str]) -> str:
    lines = [f"listen: 127.0.0.1:{port}", f"admin: 127.0.0.1:{admin}",
             f"upstreams:\n  origin: {{targets: ['{origin}']}}", "routes:"]
    lines += [f"  - {{name: {r}, match: {{path_prefix: /{r}}}, upstream: origin}}"
              for r in routes]
    return "\n".join(lines) + "\n"


def status(port: int, path: str) -> int:
    return http_get(port, path)[0]


def serves(port: int, path: str) -> bool:
    return status(port, path) == 200


class Env:
    def __init__(self, origin: Origin, workdir: Path) -> None:
        self.origin = origin
        self.port = free_port()
        self.admin = free_port()
        self.workdir = workdir

    def text(self, *routes: str) -> str:
        return config(self.port, self.admin, self.origin.address, list(routes))


@pytest.fixture
def env(origin: Origin, tmp_path: Path) -> Env:
    return Env(origin, tmp_path)


@pytest.fixture
def etcd_gateway(etcd: EtcdServer, env: Env) -> Iterator[GatewayProcess]:
    etcd.put(KEY, env.text("a"))
    with gateway_from_etcd(etcd.url, KEY, env.port, env.workdir) as gw:
        wait_admin(env.admin)
        yield gw


def test_serves_the_yaml_stored_in_etcd_and_a_new_route_within_a_second(
    etcd: EtcdServer, env: Env, etcd_gateway: GatewayProcess,
) -> None:
    assert serves(env.port, "/a/x")
    assert status(env.port, "/b/x") == 404
    etcd.put(KEY, env.text("a", "b"))
    took = wait_until(lambda: serves(env.port, "/b/x"), timeout=5, step=0.01)
    assert took < RELOAD_DEADLINE, f"new route served after {took:.3f}s"
    assert serves(env.port, "/a/x")


def test_an_invalid_config_in_etcd_is_refused_and_the_old_one_keeps_serving(
    etcd: EtcdServer, env: Env, etcd_gateway: GatewayProcess,
) -> None:
    assert serves(env.port, "/a/x")
    bad = env.text("a", "c").replace("upstream: origin}", "upstream: nowhere}")
    etcd.put(KEY, bad)

    def refusal() -> dict[str, object] | None:
        reloads = get_json(env.admin, "/reloads")
        assert isinstance(reloads, list)
        return next((r for r in reloads if r["result"] == "refused"), None)

    wait_until(lambda: refusal() is not None, timeout=5)
    record = refusal()
    assert record is not None
    error = str(record["error"])
    assert "routes[1]" in error and "nowhere" in error, error
    # the last good config keeps serving, the refused route does not exist
    assert serves(env.port, "/a/x")
    assert status(env.port, "/c/x") == 404
    # a config that is not even YAML is refused too, naming the problem
    etcd.put(KEY, "routes: [unclosed\n")
    wait_until(lambda: sum(r["result"] == "refused"                 # type: ignore[index]
                           for r in get_json(env.admin, "/reloads")) >= 2,  # type: ignore[attr-defined]
               timeout=5)
    assert serves(env.port, "/a/x")


def test_a_refused_etcd_reload_counts_in_config_reloads_total_error(
    etcd: EtcdServer, env: Env, etcd_gateway: GatewayProcess,
) -> None:
    before = metric_value(env.admin, "edgeward_config_reloads_total", 'result="error"')
    etcd.put(KEY, env.text("a").replace("upstream: origin}", "upstream: nowhere}"))
    wait_until(lambda: any(r["result"] == "refused"                 # type: ignore[index]
                           for r in get_json(env.admin, "/reloads")),  # type: ignore[attr-defined]
               timeout=5)
    after = metric_value(env.admin, "edgeward_config_reloads_total", 'result="error"')
    assert after == before + 1, (before, after)


def test_a_refused_admin_post_counts_in_config_reloads_total_error(
    env: Env, etcd_gateway: GatewayProcess,
) -> None:
    """The same counter through POST /config: the path where it does work."""
    from tests.cluster._cluster import http_post

    before = metric_value(env.admin, "edgeward_config_reloads_total", 'result="error"')
    code, body = http_post(env.admin, "/config",
                           env.text("a").replace("upstream: origin}", "upstream: nowhere}"))
    assert code == 400 and json.loads(body)["code"] == "invalid_config"
    assert metric_value(env.admin, "edgeward_config_reloads_total",
                        'result="error"') == before + 1
    assert serves(env.port, "/a/x")


def test_etcd_unreachable_at_start_exits_1_naming_the_endpoint() -> None:
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    out = subprocess.run(edgeward_command() + ["run", "-c", f"etcd://{dead}{KEY}"],
                         capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    err = out.stderr.decode()
    assert out.returncode == 1, (out.returncode, err)
    assert dead in err, err
    assert "Traceback" not in err, err
    assert took < 15, f"took {took:.1f}s to give up"


def test_a_gateway_survives_an_etcd_restart_and_sees_a_later_write(
    etcd_private: EtcdServer, env: Env,
) -> None:
    etcd = etcd_private
    etcd.put(KEY, env.text("a"))
    with gateway_from_etcd(etcd.url, KEY, env.port, env.workdir):
        wait_admin(env.admin)
        assert serves(env.port, "/a/x")
        etcd.stop()
        # etcd gone: the gateway keeps serving what it has
        for _ in range(20):
            assert serves(env.port, "/a/x")
        time.sleep(0.5)
        etcd.start()
        etcd.put(KEY, env.text("a", "b"))
        # reconnect backoff is capped at 5 s (docs/etcd.md); allow a little more
        wait_until(lambda: serves(env.port, "/b/x"), timeout=8)
        assert serves(env.port, "/a/x")


# file source --------------------------------------------------------------------------------
def test_editing_the_config_file_reloads_it(env: Env) -> None:
    path = env.workdir / "edgeward.yaml"
    path.write_text(env.text("a"))
    with GatewayProcess(["run", "-c", str(path)], env.port, env.workdir):
        wait_admin(env.admin)
        assert status(env.port, "/b/x") == 404
        path.write_text(env.text("a", "b"))
        # polled once per second (docs/etcd.md FileSource): within about two polls
        took = wait_until(lambda: serves(env.port, "/b/x"), timeout=5)
        assert took < 2.5, took
        # an invalid edit is refused; the good config keeps serving
        path.write_text("routes: [unclosed\n")
        wait_until(lambda: any(r["result"] == "refused"          # type: ignore[index]
                               for r in get_json(env.admin, "/reloads")),  # type: ignore[attr-defined]
                   timeout=5)
        assert serves(env.port, "/b/x")


def test_a_configmap_style_symlink_swap_reloads(env: Env) -> None:
    """Kubernetes projects a ConfigMap as config.yaml -> ..data/config.yaml, ..data ->
    ..<timestamp>/; an update writes a new timestamped directory and renames a new ..data
    symlink over the old one. config.yaml itself never changes."""
    root = Path(tempfile.mkdtemp(dir=env.workdir))

    def publish(text: str, stamp: str) -> None:
        d = root / f"..{stamp}"
        d.mkdir()
        (d / "config.yaml").write_text(text)
        tmp = root / "..data_tmp"
        os.symlink(d.name, tmp)
        os.rename(tmp, root / "..data")

    publish(env.text("a"), "2024_01_01_00_00_00.1")
    os.symlink("..data/config.yaml", root / "config.yaml")
    with GatewayProcess(["run", "-c", str(root / "config.yaml")], env.port, env.workdir):
        wait_admin(env.admin)
        assert serves(env.port, "/a/x") and status(env.port, "/b/x") == 404
        publish(env.text("a", "b"), "2024_01_01_00_01_00.2")
        wait_until(lambda: serves(env.port, "/b/x"), timeout=5)
        assert serves(env.port, "/a/x")
