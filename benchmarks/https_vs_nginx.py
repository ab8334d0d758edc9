"""HTTPS at the edge, side by side: edgeward's TLS listener vs nginx `listen ... ssl`.

    .venv/bin/python benchmarks/https_vs_nginx.py [--mode keepalive|handshake|both]
        [--rounds 3] [--seconds 5] [--connections 64] [--key ec|rsa]

All on 127.0.0.1, as ../shared/bench/proxybench.py does (which stays plain HTTP): an upstream
nginx serves a 12-byte body over plain HTTP; a peer nginx (1 worker) terminates TLS and proxies
to it with upstream keep-alive; edgeward (`edgeward run`, 1 worker) terminates TLS with the
same certificate and key and proxies to the same upstream. Both use TLS 1.2+ with Mozilla's
intermediate ciphers and session tickets on. A certificate (ECDSA P-256 by default, as Caddy
and Let's Encrypt issue; `--key rsa` for RSA 2048) is made for the run.

Modes (wrk, 1 thread, alternating rounds):
  keepalive   C keep-alive connections, many requests each: TLS record cost per request.
  handshake   `Connection: close` on every request, so each request is a new TCP connection
              and a full TLS handshake (wrk offers no session to resume): handshakes/s.
Before loading, each contestant's answer is checked over a verified TLS connection.
Last line per mode: 'ratio gateway/nginx MODE rps=R p99=P cpu/req=C' (medians).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

import benchkit
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

BODY = b"hello world\n"
NAME = "bench.test"


def make_certificate(directory: str, kind: str) -> tuple[str, str]:
    """A self-signed certificate for NAME; (cert path, key path)."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o644)  # nginx's worker user reads it (a throw-away key)
    return cert_path, key_path


def fetch(port: int, ca: str) -> bytes:
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=NAME) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    return data


def wait_ready(port: int, ca: str | None) -> bool:
    """The port accepts (ca None), or answers over TLS trusting `ca`."""
    if ca is None:
        return benchkit.answers(lambda: socket.create_connection(("127.0.0.1", port),
                                                                 timeout=1).close())
    return benchkit.answers(lambda: fetch(port, ca))


NGINX = """worker_processes 1; daemon off; pid {tmp}/{name}.pid; error_log {tmp}/{name}.err;
events {{ worker_connections 8192; }}
http {{ access_log off; {server} }}
"""

# Mozilla intermediate, as edgeward's defaults (tls/config.py).
NGINX_TLS = ("ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers {ciphers}; "
             "ssl_prefer_server_ciphers off; ssl_session_tickets on; "
             "ssl_session_timeout 1d; ssl_certificate {cert}; ssl_certificate_key {key};")

EDGEWARD = """listeners:
  - address: 127.0.0.1:{port}
    tls: {{certificates: [{{cert: {cert}, key: {key}}}]}}
upstreams:
  app: {{targets: ["127.0.0.1:{up}"]}}
routes:
  - {{match: {{path_prefix: /}}, upstream: app}}
"""


def run_mode(mode: str, ports: dict[str, int], pgids: dict[str, int],
             a: argparse.Namespace) -> None:
    close = mode == "handshake"
    print(f"# mode {mode}: wrk -t1 -c{a.connections} -d{a.seconds}s"
          f"{' -H Connection: close' if close else ''} https://")
    headers = ["-H", f"Host: {NAME}", *(["-H", "Connection: close"] if close else [])]
    results: dict[str, list[dict[str, float]]] = {n: [] for n in ports}
    for r in range(a.rounds):
        order = list(ports) if r % 2 == 0 else list(reversed(ports))
        for n in order:
            res = benchkit.measured(pgids[n], f"https://127.0.0.1:{ports[n]}/", a.seconds,
                                    a.connections, *headers)
            results[n].append(res)
            print(f"round {r + 1} {mode} {n:8s} rps={res['rps']:9.0f} p99={res['p99']:.2f}ms "
                  f"cpu/req={res['cpu_us']:.1f}us non2xx={res['non2xx']:.0f}"
                  f"{' socket-errors' if res['errors'] else ''}")
    med = benchkit.medians(results)
    for n, (rps, p99, cpu) in med.items():
        print(f"median {mode} {n:8s} rps={rps:9.0f} p99={p99:.2f}ms cpu/req={cpu:.1f}us")
    print(f"ratio gateway/nginx {mode} {benchkit.ratio(med)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["keepalive", "handshake", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--key", choices=["ec", "rsa"], default="ec")
    ap.add_argument("--gateway", default="edgeward run -c {config}")
    a = ap.parse_args()
    from edgeward.tls.config import MOZILLA_INTERMEDIATE_CIPHERS

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    tmp = tempfile.mkdtemp(prefix="httpsbench-")
    os.chmod(tmp, 0o755)
    with open(os.path.join(tmp, "body.txt"), "wb") as f:
        f.write(BODY)
    cert, key = make_certificate(tmp, a.key)
    up, ngx, gw = benchkit.free_port(), benchkit.free_port(), benchkit.free_port()

    def conf(name: str, server: str) -> str:
        path = os.path.join(tmp, name + ".conf")
        with open(path, "w") as f:
            f.write(NGINX.format(tmp=tmp, name=name, server=server))
        return path

    up_conf = conf("upstream", f"server {{ listen 127.0.0.1:{up} backlog=4096; root {tmp}; "
                               "location / { default_type text/plain; "
                               "try_files /body.txt =404; } }")
    tls = NGINX_TLS.format(ciphers=MOZILLA_INTERMEDIATE_CIPHERS, cert=cert, key=key)
    px_conf = conf("nginx", f"upstream up {{ server 127.0.0.1:{up}; keepalive 256; }} "
                            f"server {{ listen 127.0.0.1:{ngx} ssl backlog=4096; {tls} "
                            "location / { proxy_pass http://up; proxy_http_version 1.1; "
                            'proxy_set_header Connection ""; } }')
    cfg = os.path.join(tmp, "edgeward.yaml")
    with open(cfg, "w") as f:
        f.write(EDGEWARD.format(port=gw, up=up, cert=cert, key=key))
    procs: list[subprocess.Popen[bytes]] = []

    start = benchkit.starter(procs, tmp)

    try:
        start([nginx, "-c", up_conf])
        pgids = {"nginx": start([nginx, "-c", px_conf]).pid}
        cmd = a.gateway.replace("{config}", cfg)
        pgids["gateway"] = start(["sh", "-c", "exec " + cmd]).pid
        ports = {"nginx": ngx, "gateway": gw}
        if not wait_ready(up, None):
            print("httpsbench: the upstream did not become ready")
            return 2
        for name, port in ports.items():
            if not wait_ready(port, cert):
                print(f"httpsbench: {name} on port {port} did not become ready")
                return 2
            answer = fetch(port, cert)
            ok = answer.startswith(b"HTTP/1.1 200") and answer.endswith(BODY)
            print(f"# {name}: verified TLS answer {answer.split(b' ', 2)[1].decode()}, "
                  f"body as upstream: {ok}")
            if not ok:
                return 2
        print(f"# {os.cpu_count()} cpus; {a.key} certificate; gateway: {cmd}; "
              f"{ssl.OPENSSL_VERSION}")
        modes = ["keepalive", "handshake"] if a.mode == "both" else [a.mode]
        for mode in modes:
            run_mode(mode, ports, pgids, a)
        return 0
    finally:
        benchkit.stop(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
