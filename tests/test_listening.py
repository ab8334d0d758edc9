"""TLS listeners end to end: a real gateway process, certificates made at test time, real
clients (Python's ssl, curl, openssl s_client) over 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.tls.certkit import Authority, Leaf, key_pem, new_key

from support.gateway import GatewayProcess, free_port
from support.https import client_context, fetch, names
from support.origin import Origin

WAIT = 15.0  # longest wait for a condition (a reload, a log line); never a pass/fail timer


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def replace(path: Path, data: bytes) -> None:
    """Write `data` over `path` as certificate tools do: a new file renamed over the old."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class Site:
    gw: GatewayProcess
    origin: Origin
    ca: Authority
    dir: Path
    tls: int
    optional: int
    required: int
    redirect: int
    admin: int
    client: tuple[str, str]
    leaves: dict[str, Leaf]

    def ctx(self, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
        return client_context(self.ca.pem, cert)


CONFIG = """
listen: {{listen}}
admin: 127.0.0.1:{admin}
server: {{header_timeout: 2s, client_cert_header: x-client-cert}}
listeners:
  - address: 127.0.0.1:{tls}
    tls:
      certificates:
        - {{cert: {d}/default.pem, key: {d}/default.key}}
        - {{cert: {d}/exact.pem, key: {d}/exact.key}}
        - {{cert: {d}/wild.pem, key: {d}/wild.key}}
        - {{cert: {d}/reload.pem, key: {d}/reload.key}}
        - {{cert: {d}/badkey.pem, key: {d}/badkey.key}}
      watch_interval: 100ms
    hsts: max-age=31536000; includeSubDomains
  - address: 127.0.0.1:{optional}
    tls: {{certificates: [{{cert: {d}/default.pem, key: {d}/default.key}}],
           client_ca: {d}/clients.pem, client_auth: optional}}
  - address: 127.0.0.1:{required}
    tls: {{certificates: [{{cert: {d}/default.pem, key: {d}/default.key}}],
           client_ca: {d}/clients.pem, client_auth: required}}
  - {{address: 127.0.0.1:{redirect}, https_redirect: true, https_port: {tls}}}
upstreams:
  origin: {{targets: [{origin}]}}
routes:
  - {{match: {{path_prefix: /}}, upstream: origin}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    d = tmp_path_factory.mktemp("site")
    ca = Authority.root("site root")
    inter = ca.intermediate("site inter")
    leaves = {
        "default": inter.issue(["default.test"]),
        "exact": inter.issue(["a.w.test"]),
        "wild": inter.issue(["*.w.test"]),
        "reload": inter.issue(["reload.test"]),
        "badkey": inter.issue(["badkey.test"]),
    }
    for stem, leaf in leaves.items():
        leaf.write(d / stem)
    clients = Authority.root("client root")
    (d / "clients.pem").write_bytes(clients.pem)
    client = clients.issue(["client.test"], cn="client one", client=True)
    cert, key = client.write(d / "client")
    ports = {k: free_port() for k in ("tls", "optional", "required", "redirect", "admin")}
    with Origin() as origin:
        text = CONFIG.format(d=d, origin=origin.address, **ports)
        with GatewayProcess.config(text) as gw:
            for port in ports.values():
                wait_for(lambda p=port: _accepts(p), f"port {port}")
            yield Site(gw, origin, ca, d, client=(str(cert), str(key)), leaves=leaves, **ports)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# --- SNI --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("sni", "served"), [
    ("a.w.test", ["a.w.test"]),            # the exact name beats the wildcard
    ("b.w.test", ["*.w.test"]),            # one label under the wildcard
    ("default.test", ["default.test"]),
    ("nothing.test", ["default.test"]),    # a name nobody covers: the first certificate
])
def test_sni_chooses_the_certificate(site: Site, sni: str, served: list[str]) -> None:
    ctx = site.ctx()
    ctx.check_hostname = False  # the default certificate does not name nothing.test
    got = fetch(site.tls, "/echo", server_name=sni, ctx=ctx)
    assert got.status == 200
    assert names(got.cert) == served


def test_a_client_without_sni_gets_the_default_certificate(site: Site) -> None:
    ctx = site.ctx()
    ctx.check_hostname = False
    got = fetch(site.tls, "/echo", server_name=None, ctx=ctx, host="x")
    assert names(got.cert) == ["default.test"]


def test_openssl_s_client_sees_the_wildcard_chain(site: Site) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    (site.dir / "root.pem").write_bytes(site.ca.pem)
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{site.tls}", "-servername",
         "z.w.test", "-CAfile", str(site.dir / "root.pem"), "-verify_return_error",
         "-verify_hostname", "z.w.test"],
        input=b"", capture_output=True, timeout=30)
    text = out.stdout.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in text, text
    assert "CN = *.w.test" in text
    assert "ALPN protocol: http/1.1" in text or "No ALPN negotiated" in text


# --- what requests on a TLS listener look like -------------------------------------------------

def test_requests_on_tls_are_https_upstream_and_get_hsts(site: Site) -> None:
    got = fetch(site.tls, "/echo", server_name="default.test", ctx=site.ctx(),
                headers=[("X-Forwarded-Proto", "http")])
    assert got.status == 200
    sent = dict((k.lower(), v) for k, v in got.json()["headers"])
    assert sent["x-forwarded-proto"] == "https"
    assert sent["x-forwarded-for"] == "127.0.0.1"  # the TCP peer behind the TLS transport
    assert got.header("strict-transport-security") == "max-age=31536000; includeSubDomains"


def test_curl_over_https(site: Site) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    (site.dir / "root.pem").write_bytes(site.ca.pem)
    out = subprocess.run(
        ["curl", "-sS", "-i", "--cacert", str(site.dir / "root.pem"), "--resolve",
         f"a.w.test:{site.tls}:127.0.0.1", f"https://a.w.test:{site.tls}/status/204"],
        capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    head = out.stdout.decode().lower()
    assert head.startswith("http/2 204")  # curl offers h2 by ALPN, and the listener takes it
    assert "strict-transport-security: max-age=31536000" in head


def test_the_plain_listener_gets_no_hsts(site: Site) -> None:
    with socket.create_connection(("127.0.0.1", site.gw.port), timeout=10) as s:
        s.sendall(b"GET /status/204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = _read_all(s).lower()
    assert head.startswith(b"http/1.1 204") and b"strict-transport-security" not in head


def test_https_redirect_listener(site: Site) -> None:
    with socket.create_connection(("127.0.0.1", site.redirect), timeout=10) as s:
        s.sendall(b"POST /a/b?c=1 HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 0\r\n"
                  b"Connection: close\r\n\r\n")
        head = _read_all(s).decode()
    assert head.startswith("HTTP/1.1 308")
    assert f"location: https://shop.test:{site.tls}/a/b?c=1\r\n" in head.lower()


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_client_that_never_finishes_the_handshake_is_closed(site: Site) -> None:
    with socket.create_connection(("127.0.0.1", site.tls), timeout=WAIT) as s:
        s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and nothing more
        assert s.recv(1024) == b""   # closed by server.header_timeout (2 s), not by us


def test_plain_http_on_the_tls_port_is_refused(site: Site) -> None:
    with socket.create_connection(("127.0.0.1", site.tls), timeout=WAIT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = _read_all(s)
    assert b"HTTP/1.1 200" not in data


# --- mTLS -------------------------------------------------------------------------------------

def test_required_client_certificate(site: Site) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        fetch(site.required, "/echo", server_name="default.test", ctx=site.ctx())
    got = fetch(site.required, "/echo", server_name="default.test",
                ctx=site.ctx(site.client), headers=[("X-Client-Cert", "Subject=\"CN=admin\"")])
    sent = [v for k, v in got.json()["headers"] if k.lower() == "x-client-cert"]
    assert len(sent) == 1
    assert 'Subject="CN=client one"' in sent[0] and "DNS=client.test" in sent[0]
    assert sent[0].startswith("Hash=")


def test_a_certificate_from_another_ca_is_refused(site: Site) -> None:
    stranger = Authority.root("stranger root").issue(["client.test"], cn="stranger", client=True)
    cert, key = stranger.write(site.dir / "stranger")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        fetch(site.optional, "/echo", server_name="default.test",
              ctx=site.ctx((str(cert), str(key))))


def test_optional_client_certificate(site: Site) -> None:
    without = fetch(site.optional, "/echo", server_name="default.test", ctx=site.ctx(),
                    headers=[("x-client-cert", "forged")])
    assert [k for k, _ in without.json()["headers"] if k.lower() == "x-client-cert"] == []
    with_cert = fetch(site.optional, "/echo", server_name="default.test",
                      ctx=site.ctx(site.client))
    sent = dict((k.lower(), v) for k, v in with_cert.json()["headers"])
    assert 'Subject="CN=client one"' in sent["x-client-cert"]


def test_the_client_cert_header_is_stripped_on_every_listener(site: Site) -> None:
    got = fetch(site.tls, "/echo", server_name="default.test", ctx=site.ctx(),
                headers=[("X-CLIENT-CERT", "Hash=00;Subject=\"CN=admin\"")])
    assert [k for k, _ in got.json()["headers"] if k.lower() == "x-client-cert"] == []
    with socket.create_connection(("127.0.0.1", site.gw.port), timeout=10) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nx-client-cert: forged\r\n"
                  b"Connection: close\r\n\r\n")
        body = _read_all(s)
    assert b"forged" not in body and b"x-client-cert" not in body.lower()


# --- certificates reloaded while serving --------------------------------------------------------

def _serial(site: Site, sni: str) -> int:
    return fetch(site.tls, "/status/204", server_name=sni, ctx=site.ctx()).cert.serial_number


def test_a_replaced_certificate_is_served_without_restart(site: Site) -> None:
    before = _serial(site, "reload.test")
    assert before == site.leaves["reload"].cert.serial_number
    fresh = site.ca.intermediate("site inter 2").issue(["reload.test"])
    replace(site.dir / "reload.key", fresh.key_pem)
    replace(site.dir / "reload.pem", fresh.chain_pem)
    wait_for(lambda: _serial(site, "reload.test") == fresh.cert.serial_number,
             "the new certificate to be served")
    assert _serial(site, "default.test") == site.leaves["default"].cert.serial_number


def test_a_key_that_does_not_match_is_refused_and_the_old_pair_keeps_serving(site: Site) -> None:
    replace(site.dir / "badkey.key", key_pem(new_key()))
    wait_for(lambda: "does not match the certificate" in site.gw.stderr_text(),
             "the refusal to be logged")
    log = site.gw.stderr_text()
    line = next(x for x in log.splitlines() if "does not match the certificate" in x)
    assert "listeners[0].tls.certificates[4].key" in line and "badkey.key" in line
    assert _serial(site, "badkey.test") == site.leaves["badkey"].cert.serial_number


# --- listener TLS changed by a config reload -----------------------------------------------------

RELOADED = """
listen: {{listen}}
listeners:
  - address: 127.0.0.1:{tls}
    tls:
      certificates:
{certs}
routes:
  - {{match: {{path_prefix: /}}, respond: {{status: 200, body: ok}}}}
"""


def _reloaded(d: Path, tls: int, *stems: str) -> str:
    certs = "".join(f"        - {{cert: {d}/{s}.pem, key: {d}/{s}.key}}\n" for s in stems)
    return RELOADED.format(tls=tls, certs=certs)


def test_a_config_reload_changes_the_certificates(tmp_path: Path) -> None:
    ca = Authority.root("reload root")
    first, second = ca.issue(["one.test"]), ca.issue(["two.test"])
    first.write(tmp_path / "one")
    second.write(tmp_path / "two")
    (tmp_path / "broken.pem").write_bytes(second.chain_pem)
    (tmp_path / "broken.key").write_bytes(key_pem(new_key()))
    port = free_port()
    ctx = client_context(ca.pem)
    ctx.check_hostname = False

    def served(sni: str) -> list[str]:
        return names(fetch(port, "/", server_name=sni, ctx=ctx).cert)

    with GatewayProcess.config(_reloaded(tmp_path, port, "one")) as gw:
        wait_for(lambda: _accepts(port), "the TLS listener")
        assert served("two.test") == ["one.test"]
        config = gw.workdir / "edgeward.yaml"
        text = _reloaded(tmp_path, port, "one", "two")
        replace(config, text.replace("{listen}", f"127.0.0.1:{gw.port}").encode())
        wait_for(lambda: served("two.test") == ["two.test"], "the added certificate")
        bad = _reloaded(tmp_path, port, "one", "broken")
        replace(config, bad.replace("{listen}", f"127.0.0.1:{gw.port}").encode())
        wait_for(lambda: "listeners[0].tls.certificates[1].key" in gw.stderr_text(),
                 "the refusal")
        assert "does not match the certificate" in gw.stderr_text()
        assert served("two.test") == ["two.test"]  # the last good config keeps serving


def test_workers_resume_each_others_sessions(tmp_path: Path) -> None:
    ca = Authority.root("workers root")
    ca.issue(["w.test"]).write(tmp_path / "w")
    port = free_port()
    text = RELOADED.format(tls=port, certs=f"        - {{cert: {tmp_path}/w.pem, "
                                           f"key: {tmp_path}/w.key}}\n")
    ctx = client_context(ca.pem)
    with GatewayProcess.config(text, workers=2) as gw:
        wait_for(lambda: _accepts(port), "the TLS listener")
        wait_for(lambda: len(gw.children()) == 2, "both workers")
        first = fetch(port, "/", server_name="w.test", ctx=ctx)
        # Each new connection lands on either worker (SO_REUSEPORT); all of them resume.
        resumed = [fetch(port, "/", server_name="w.test", ctx=ctx, session=first.session).reused
                   for _ in range(16)]
    assert resumed == [True] * 16


def test_certificate_expiry_is_exported(site: Site) -> None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{site.admin}/metrics", timeout=10) as r:
        text = r.read().decode()
    lines = [x for x in text.splitlines()
             if x.startswith('edgeward_tls_certificate_expiry_seconds{name="*.w.test"}')]
    assert lines, text[-2000:]
    seconds = float(lines[0].split()[-1])
    assert 88 * 86400 < seconds <= 90 * 86400  # certkit's leaves last 90 days


def test_certificates_are_listed_soonest_first_and_drawn_on_the_dashboard(site: Site) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{site.admin}/certificates",
                                timeout=10) as r:
        certs = json.loads(r.read())
    names = [c["name"] for c in certs]
    assert {"default.test", "a.w.test", "*.w.test"} <= set(names), names
    lefts = [c["seconds_left"] for c in certs]
    assert lefts == sorted(lefts)
    assert all(88 * 86400 < c["seconds_left"] <= 90 * 86400 for c in certs
               if c["name"] in ("default.test", "*.w.test"))
    assert abs(certs[0]["expires"] - time.time() - certs[0]["seconds_left"]) < 60
    chromium = "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        pytest.skip("headless Chromium not installed")
    profile = Path(tempfile.mkdtemp(prefix="edgeward-chromium-"))
    try:
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--virtual-time-budget=8000", f"--user-data-dir={profile}", "--dump-dom",
             f"http://127.0.0.1:{site.admin}/"],
            capture_output=True, timeout=60, check=True).stdout.decode(errors="replace")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert '<tr data-cert="*.w.test">' in dom
    row = re.search(r'data-cert="default\.test">.*?class="pill ok">(89|90) days<', dom)
    assert row, dom[-3000:]


def test_every_listener_shares_its_ticket_keys(site: Site) -> None:
    """The ticket key hook took on every TLS listener, mTLS ones included (else it logs)."""
    fetch(site.required, "/status/204", server_name="default.test", ctx=site.ctx(site.client))
    assert "session ticket keys cannot be shared" not in site.gw.stderr_text()
