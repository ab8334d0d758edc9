"""A real redis-server for tests: started on a free 127.0.0.1 port, stopped by PID, and
restartable on the same port (to test what clients do when Redis goes away and comes back)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

from tests.support.gateway import free_port

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """A real redis-server on a free port; `stop()` and `start()` keep the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a paused server must wake to exit
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)

    def pause(self) -> None:
        """SIGSTOP: a Redis that hangs rather than refuses."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def command(self, *args: str) -> str:
        """One command over RESP; the reply as text (bulk strings and status lines)."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
            s.sendall(payload.encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data[:1] in (b"+", b"-", b":") and data.endswith(b"\r\n"):
                    break
                if data[:1] == b"$":
                    head, _, rest = data.partition(b"\r\n")
                    if int(head[1:]) < 0 or len(rest) >= int(head[1:]) + 2:
                        break
        if data[:1] == b"$":
            return data.partition(b"\r\n")[2][:-2].decode()
        return data[1:].strip().decode()

    def script_calls(self) -> int:
        """evalsha + eval calls so far (INFO commandstats): the limiter's round trips."""
        text = self.command("INFO", "commandstats")
        return sum(int(m) for m in re.findall(r"cmdstat_eval(?:sha)?:calls=(\d+)", text))
