"""`GatewayProcess`: a real `edgeward` process on a free 127.0.0.1 port, for end-to-end tests.

    with GatewayProcess.proxy(origin.address) as gw:          # edgeward proxy --to ...
    with GatewayProcess.config(yaml_text_with_{listen}) as gw: # edgeward run -c FILE
        gw.port, gw.url, gw.pid, gw.rss_kb(), gw.stderr_text()

The config text may contain `{listen}`, replaced by 127.0.0.1:<free port>. The process is
stopped with SIGTERM and waited for (SIGKILL after STOP_GRACE seconds); `returncode` then
holds its exit status. A process that dies or never listens raises `GatewayFailed` carrying
its stderr.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT = 15.0
STOP_GRACE = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def edgeward_command() -> list[str]:
    exe = shutil.which("edgeward")
    return [exe] if exe else [sys.executable, "-m", "edgeward.cli"]


def port_accepts(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class GatewayFailed(RuntimeError):
    pass


class GatewayProcess:
    def __init__(self, args: list[str], port: int, workdir: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = env or {}
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="edgeward-e2e-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._stderr_path = self.workdir / "stderr.log"

    # constructors ----------------------------------------------------------------------------
    @classmethod
    def proxy(cls, *targets: str, workers: int = 1) -> GatewayProcess:
        port = free_port()
        args = ["proxy", "--listen", f"127.0.0.1:{port}", "--to", ",".join(targets)]
        if workers != 1:
            args += ["--workers", str(workers)]
        return cls(args, port)

    @classmethod
    def config(cls, text: str, *, workers: int = 1,
               env: dict[str, str] | None = None) -> GatewayProcess:
        port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix="edgeward-e2e-"))
        path = workdir / "edgeward.yaml"
        path.write_text(text.replace("{listen}", f"127.0.0.1:{port}"))
        args = ["run", "-c", str(path)]
        if workers != 1:
            args += ["--workers", str(workers)]
        gw = cls(args, port, workdir, env)
        gw._own_dir = True
        return gw

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> GatewayProcess:
        err = open(self._stderr_path, "wb")  # noqa: SIM115  # handed to the child
        self.proc = subprocess.Popen(
            edgeward_command() + self.args, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=err, cwd=self.workdir,
            env={**os.environ, "EDGEWARD_LOG_LEVEL": os.environ.get("EDGEWARD_LOG_LEVEL",
                                                                    "WARNING"), **self.env},
        )
        err.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GatewayFailed(f"edgeward exited with {self.proc.returncode}:\n"
                                    f"{self.stderr_text()}")
            if port_accepts(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise GatewayFailed(f"edgeward did not listen on {self.port}:\n{self.stderr_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the process, wait up to STOP_GRACE seconds, then SIGKILL. Its exit code."""
        proc = self.proc
        if proc is None:
            return self.returncode if self.returncode is not None else 0
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.returncode = proc.returncode
        self.proc = None
        return self.returncode

    def wait(self, timeout: float = STOP_GRACE) -> int:
        assert self.proc is not None
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # observation -----------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr_text(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def rss_kb(self, pid: int | None = None) -> int:
        """VmRSS of the gateway process (or `pid`) in KiB, from /proc."""
        with open(f"/proc/{pid or self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise GatewayFailed("no VmRSS line")

    def children(self) -> list[int]:
        """PIDs of the process's direct children (the workers when --workers > 1)."""
        out: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                text = (task / "children").read_text()
            except OSError:
                continue
            out += [int(p) for p in text.split()]
        return out
