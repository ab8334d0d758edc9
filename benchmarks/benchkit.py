"""What the side-by-side benchmarks (compress_vs_nginx, https_vs_nginx, jwt_proxy) share: a
free port, wrk run with any extra arguments and its output read, the CPU time of a process
group, the medians and the ratio line, and stopping what they started. The method is
proxybench's (../shared/bench/proxybench.py): wrk -t1, alternating rounds, CPU per request
from /proc."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def best_of(fn: Callable[[], object], n: int, unit: float = 1e9, rounds: int = 5) -> float:
    """The fastest of `rounds` runs of `n` calls of `fn`, per call, in 1/`unit` seconds
    (ns by default): the least disturbed run on a shared machine."""
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * unit)
    return min(runs)


def rss_kib(pid: int) -> int:
    """A process's resident set size (VmRSS), KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def group_cpu_seconds(pgid: int) -> float:
    """User and system CPU seconds of every live process in a process group (Linux /proc)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # the process group, after the command name
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, conns: int, *extra: str) -> dict[str, float]:
    """One wrk run (1 thread, `conns` connections, `extra` arguments such as -H or -s):
    requests per second, p99 in ms, requests, non-2xx/3xx answers, socket errors (1/0)."""
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", *extra,
                          url], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = float("nan")
    if m:
        v, unit = float(m.group(1)), m.group(2)
        p99 = v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    reqs = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p99": p99, "requests": float(reqs.group(1)) if reqs else 0.0,
            "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
            "errors": 1.0 if re.search(r"Socket errors:", out) else 0.0}


def measured(pgid: int, url: str, seconds: int, conns: int, *extra: str) -> dict[str, float]:
    """`wrk` with `cpu_us`: the CPU time process group `pgid` spent per request meanwhile."""
    cpu0 = group_cpu_seconds(pgid)
    res = wrk(url, seconds, conns, *extra)
    res["cpu_us"] = (group_cpu_seconds(pgid) - cpu0) * 1e6 / max(1.0, res["requests"])
    return res


def medians(results: dict[str, list[dict[str, float]]]) -> dict[str, tuple[float, float, float]]:
    """Per contestant, the medians of (rps, p99, cpu_us) over its rounds."""
    return {n: (statistics.median(x["rps"] for x in v), statistics.median(x["p99"] for x in v),
                statistics.median(x["cpu_us"] for x in v)) for n, v in results.items()}


def ratio(med: dict[str, tuple[float, float, float]]) -> str:
    """`rps=R p99=P cpu/req=C`: the gateway's medians over nginx's, proxybench's ratio line."""
    g, x = med["gateway"], med["nginx"]
    return f"rps={g[0] / x[0]:.3f} p99={g[1] / x[1]:.3f} cpu/req={g[2] / x[2]:.3f}"


def stop(procs: list[subprocess.Popen[bytes]], tmp: str) -> None:
    """SIGTERM each started process group, SIGKILL what is left after 5 s, remove `tmp`."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
    shutil.rmtree(tmp, ignore_errors=True)


def starter(procs: list[subprocess.Popen[bytes]], tmp: str
            ) -> Callable[[list[str]], subprocess.Popen[bytes]]:
    """A `start(cmd)` for a benchmark's processes: each in its own session (so its group's
    CPU is measured and `stop` ends the whole group), stderr kept in `tmp`, added to `procs`."""
    def start(cmd: list[str]) -> subprocess.Popen[bytes]:
        err = open(os.path.join(tmp, f"proc{len(procs)}.err"), "w")  # noqa: SIM115
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        procs.append(p)
        return p
    return start


def answers(probe: Callable[[], object], timeout: float = 20.0) -> bool:
    """Whether `probe()` (a request to a process just started) succeeds within `timeout`,
    retried every 0.2 s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            probe()
            return True
        except Exception:  # noqa: BLE001 - not up yet, whatever the error
            time.sleep(0.2)
    return False
