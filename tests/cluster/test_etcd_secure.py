"""A gateway on an etcd that speaks TLS only and requires a user: `edgeward run -c etcd://...`
with EDGEWARD_ETCD_* in its environment, whose config (read from that etcd) names the same
etcd with `etcd: {username, password, tls}` for service discovery. The config is followed, the
registry is read, and the password shows nowhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.cluster._cluster import get_json, http_get, wait_admin, wait_until
from tests.fixtures_etcd import SECURE_PASSWORD, SECURE_USER, EtcdServer, start_secure_etcd
from tests.support.gateway import GatewayFailed, GatewayProcess, free_port
from tests.support.origin import Origin

KEY = "/edgeward/gw-config"


@pytest.fixture(scope="module")
def secure_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = start_secure_etcd(tmp_path_factory.mktemp("etcd-secure"))
    yield server
    server.stop()


def gateway_config(port: int, admin: int, etcd: EtcdServer, routes: list[str]) -> str:
    tls = etcd.tls
    assert tls is not None
    lines = [
        f"listen: 127.0.0.1:{port}", f"admin: 127.0.0.1:{admin}",
        f"etcd: {{endpoints: ['{etcd.url}'], username: {SECURE_USER}, "
        f"password: '{SECURE_PASSWORD}',",
        f"       tls: {{ca: '{tls.ca}', client_cert: '{tls.client_cert}', "
        f"client_key: '{tls.client_key}'}}}}",
        "upstreams:\n  svc: {discovery: {etcd: svc}}",
        "routes:",
    ]
    lines += [f"  - {{name: {r}, match: {{path_prefix: /{r}}}, upstream: svc}}" for r in routes]
    return "\n".join(lines) + "\n"


def test_config_watch_and_discovery_through_a_secure_etcd(
        secure_etcd: EtcdServer, origin: Origin) -> None:
    tls = secure_etcd.tls
    assert tls is not None
    port, admin = free_port(), free_port()
    secure_etcd.put(f"/edgeward/services/svc/{origin.address}",
                    f'{{"address": "{origin.address}", "weight": 1}}')
    secure_etcd.put(KEY, gateway_config(port, admin, secure_etcd, ["a"]))
    env = {"EDGEWARD_ETCD_USER": f"{SECURE_USER}:{SECURE_PASSWORD}",
           "EDGEWARD_ETCD_CACERT": str(tls.ca), "EDGEWARD_ETCD_CERT": str(tls.client_cert),
           "EDGEWARD_ETCD_KEY": str(tls.client_key)}
    gw = GatewayProcess(["run", "-c", f"etcd://{secure_etcd.url}{KEY}"], port, env=env)
    with gw:
        wait_admin(admin)
        wait_until(lambda: http_get(port, "/a/x")[0] == 200, timeout=5)   # via the registry
        secure_etcd.put(KEY, gateway_config(port, admin, secure_etcd, ["a", "b"]))
        wait_until(lambda: http_get(port, "/b/x")[0] == 200, timeout=5)   # the watch follows
        shown = get_json(admin, "/config")
        assert isinstance(shown, dict) and shown["etcd"]["password"] == "<redacted>"
        assert SECURE_PASSWORD not in http_get(admin, "/config")[1].decode()
    assert SECURE_PASSWORD not in gw.stderr_text()


def test_without_the_environment_the_gateway_names_the_endpoint(
        secure_etcd: EtcdServer) -> None:
    gw = GatewayProcess(["run", "-c", f"etcd://{secure_etcd.url}{KEY}"], free_port(),
                        env={"EDGEWARD_ETCD_CACERT": "/nonexistent/ca.pem"})
    with pytest.raises(GatewayFailed) as info:
        gw.start()
    text = str(info.value)
    assert "EDGEWARD_ETCD_CACERT: no such file: /nonexistent/ca.pem" in text, text
    assert "Traceback" not in text
