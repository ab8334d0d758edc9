"""A real redis-server for tests: started on a free 127.0.0.1 port, stopped by PID, and
restartable on the same port (to test what clients do when Redis goes away and comes back)."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from tests.support.gateway import free_port

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """A real redis-server on a free port; `stop()` and `start()` keep the port."""

    def __init__(self, args: Sequence[str] = (), *, tls: ssl.SSLContext | None = None,
                 auth: tuple[str, str] | None = None, program: str = REDIS_SERVER) -> None:
        """`args`: more redis-server options. With `tls` (a client context) the port is the
        TLS port (`--tls-port`, plain port off) and `command()` speaks TLS; with `auth`
        (user, password) `command()` authenticates first."""
        self.port = free_port()
        self.args = list(args)
        self.tls = tls
        self.auth = auth
        self.program = program
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        ports = (["--port", "0", "--tls-port", str(self.port)] if self.tls is not None
                 else ["--port", str(self.port)])
        self.proc = subprocess.Popen(
            [self.program, *ports, "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.program} exited with {self.proc.returncode}")
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"{self.program} did not start")

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
        payload = _resp(*args)
        if self.auth is not None:
            payload = _resp("AUTH", *self.auth) + payload
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as raw:
            s = (self.tls.wrap_socket(raw, server_hostname="127.0.0.1")
                 if self.tls is not None else raw)
            s.sendall(payload.encode())
            if self.auth is not None:
                reply = s.recv(5)           # "+OK\r\n" (a refused AUTH says -WRONGPASS)
                if reply != b"+OK\r\n":
                    raise RuntimeError(f"AUTH refused: {reply!r}")
            reply = _read_reply(s.makefile("rb"))
        return " ".join(map(str, reply)) if isinstance(reply, list) else str(reply)

    def script_calls(self) -> int:
        """evalsha + eval calls so far (INFO commandstats): the limiter's round trips."""
        text = self.command("INFO", "commandstats")
        return sum(int(m) for m in re.findall(r"cmdstat_eval(?:sha)?:calls=(\d+)", text))


def _resp(*args: str) -> str:
    return f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)


def _read_reply(f: Any) -> Any:
    """One RESP2 reply: text for simple/bulk strings and integers, a list for arrays."""
    line = f.readline()
    if not line:
        raise ConnectionResetError("redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind in (b"+", b"-", b":"):
        return rest
    if kind == b"$":
        size = int(rest)
        return "" if size < 0 else f.read(size + 2)[:-2].decode()
    if kind == b"*":
        return [] if int(rest) < 0 else [_read_reply(f) for _ in range(int(rest))]
    raise ValueError(f"not RESP: {line!r}")
