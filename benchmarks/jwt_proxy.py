#!/usr/bin/env python3
"""JWT (RS256) on the data plane, side by side with plain nginx in one run, as proxybench
does it (same upstream nginx, same peer nginx config, same wrk, rounds alternated), but
with an `Authorization: Bearer` token on every request, which proxybench cannot send.

Loads on the gateway, each against nginx proxying the same requests:
  plain    the same route without authentication (the gateway's own cost, for reference)
  cached   every request carries the same valid token (the verified-token cache answers)
  rotate   1,000 distinct valid tokens in turn, cache on (after the first 1,000: cached)
  verify   1,000 distinct valid tokens in turn, cache_size 0: every request verifies RS256
Prints per mode 'ratio gateway/nginx rps=R p99=P cpu/req=C' like proxybench.

Run from the project root: .venv/bin/python benchmarks/jwt_proxy.py [--rounds 3] [--seconds 5]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

import benchkit
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "..", "shared", "bench", "proxybench.py")
EDGEWARD = shutil.which("edgeward") or os.path.join(ROOT, ".venv", "bin", "edgeward")

LUA = """
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i %% #tokens + 1
  return wrk.format("GET", "/", {["Authorization"] = "Bearer " .. tokens[i]})
end
"""


def load_proxybench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("proxybench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_listening(port: int, timeout: float = 20.0) -> bool:
    """The port accepts connections (a gateway answers GET / without a token with 401,
    which proxybench's readiness probe takes for not ready)."""
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--modes", default="plain,cached,rotate,verify")
    a = ap.parse_args()
    pb = load_proxybench()
    pb.ensure_tools({"nginx"})
    tmp = tempfile.mkdtemp(prefix="jwtbench-")
    os.chmod(tmp, 0o755)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keyfile = os.path.join(tmp, "key.pem")
    with open(keyfile, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    exp = int(time.time()) + 86400
    tokens = [jwt.encode({"sub": "alice", "exp": exp, "jti": str(i)}, key, algorithm="RS256")
              for i in range(1000)]
    scripts = {}
    for mode, toks in (("one", tokens[:1]), ("many", tokens)):
        path = os.path.join(tmp, f"{mode}.txt")
        with open(path, "w") as f:
            f.write("\n".join(toks) + "\n")
        scripts[mode] = os.path.join(tmp, f"{mode}.lua")
        with open(scripts[mode], "w") as f:
            f.write(LUA % path)
    procs: list[subprocess.Popen[bytes]] = []
    up, ngx = benchkit.free_port(), benchkit.free_port()
    with open(os.path.join(tmp, "body.txt"), "w") as f:
        f.write("x" * 11 + "\n")

    def nginx_conf(name: str, block: str) -> str:
        path = os.path.join(tmp, name + ".conf")
        with open(path, "w") as f:
            f.write(f"worker_processes 1; daemon off; pid {tmp}/{name}.pid; error_log "
                    f"{tmp}/{name}.err;\nevents {{ worker_connections 8192; }}\n"
                    f"http {{ access_log off; {block} }}\n")
        return path

    start = benchkit.starter(procs, tmp)

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    try:
        start([nginx, "-c", nginx_conf("upstream", (
            f"server {{ listen 127.0.0.1:{up} backlog=4096; root {tmp}; location / {{ "
            f"default_type text/plain; try_files /body.txt =404; }} }}"))])
        peer = start([nginx, "-c", nginx_conf("nginx", (
            f"upstream up {{ server 127.0.0.1:{up}; keepalive 256; }} server {{ listen "
            f"127.0.0.1:{ngx} backlog=4096; location / {{ proxy_pass http://up; "
            f'proxy_http_version 1.1; proxy_set_header Connection ""; }} }}'))])
        template = open(os.path.join(ROOT, "benchmarks", "jwt.yaml")).read()
        gateways = {}
        for mode, cache in (("plain", 0), ("cached", 10000), ("rotate", 10000), ("verify", 0)):
            if mode not in a.modes.split(","):
                continue
            port = benchkit.free_port()
            text = (template.replace("{listen}", f"127.0.0.1:{port}")
                    .replace("{upstream}", f"127.0.0.1:{up}").replace("{keyfile}", keyfile)
                    .replace("{cache_size}", str(cache)))
            if mode == "plain":
                text = text.split("    filters:")[0]
            cfg = os.path.join(tmp, f"{mode}.yaml")
            with open(cfg, "w") as f:
                f.write(text)
            gateways[mode] = (port, start([EDGEWARD, "run", "-c", cfg]))
        for port in [up, ngx, *(p for p, _ in gateways.values())]:
            if not wait_listening(port):
                errs = [open(os.path.join(tmp, n)).read()[-1500:] for n in sorted(os.listdir(tmp))
                        if n.endswith(".err") and n.startswith("p")]
                print(f"jwt_proxy: port {port} did not become ready\n" + "\n".join(errs))
                return 2
        print(f"# {os.cpu_count()} cpus; wrk -t1 -c{a.connections} -d{a.seconds}s; "
              f"load {open('/proc/loadavg').read().split()[:3]}")
        for mode, (port, proc) in gateways.items():
            script = scripts["one" if mode in ("plain", "cached") else "many"]
            results: dict[str, list[dict[str, float]]] = {"nginx": [], "gateway": []}
            for r in range(a.rounds):
                order = [("nginx", ngx, peer), ("gateway", port, proc)]
                for name, p, pr in (order if r % 2 == 0 else order[::-1]):
                    res = benchkit.measured(pr.pid, f"http://127.0.0.1:{p}/", a.seconds,
                                            a.connections, "-s", script)
                    results[name].append(res)
                    print(f"{mode} round {r + 1} {name:8s} rps={res['rps']:9.0f} "
                          f"p99={res['p99']:.2f}ms cpu/req={res['cpu_us']:.1f}us "
                          f"non2xx={res['non2xx']:.0f}")
            med = benchkit.medians(results)
            print(f"{mode}: ratio gateway/nginx {benchkit.ratio(med)} (gateway "
                  f"{med['gateway'][0]:.0f} rps, nginx {med['nginx'][0]:.0f} rps)")
        return 0
    finally:
        benchkit.stop(procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
