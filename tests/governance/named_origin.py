"""A recording origin that says who it is and can be told to misbehave.

`NamedOrigin` extends tests/support/origin.py's `Origin` (same threads, same recording of raw
bytes and request heads) and changes only the answer of ordinary paths: the JSON body names the
origin (`{"origin": NAME, "path": ...}`), and these switches, which a test may flip while the
gateway runs, shape it:

  status          every ordinary request is answered with this status (500 = a broken origin)
  delay           seconds to wait before answering (a slow origin)
  healthy         False -> GET /healthz answers 503 (other paths still answer normally, so a
                  test can see whether the gateway still sends traffic there)
  fail_first_try  the first request carrying a given `x-try-id` value gets 503, later ones
                  200: "an origin that fails the first try", deterministic per request id

`served(mark)` counts requests other than health probes since a `mark()`.
"""

from __future__ import annotations

import json
import socket
import threading
import time

from support.origin import ConnectionRecord, Origin, RequestRecord

HEALTH_PATH = "/healthz"


class NamedOrigin(Origin):
    def __init__(self, name: str, *, status: int = 200, delay: float = 0.0,
                 fail_first_try: bool = False) -> None:
        super().__init__()
        self.name = name
        self.status = status
        self.delay = delay
        self.healthy = True
        self.fail_first_try = fail_first_try
        self._tried: set[str] = set()
        self._conn = threading.local()

    def __enter__(self) -> NamedOrigin:
        self.start()
        return self

    def _serve(self, sock: socket.socket, record: ConnectionRecord) -> None:
        self._conn.id = record.conn_id  # one thread per connection
        super()._serve(sock, record)

    def _current(self) -> RequestRecord:
        """The request being answered on this thread's connection (the newest of its conn)."""
        conn_id = self._conn.id
        with self.lock:
            for req in reversed(self.requests):
                if req.conn_id == conn_id:
                    return req
        raise AssertionError("no request recorded for this connection")

    def _respond(self, sock: socket.socket, status: int, body: bytes, head_only: bool) -> None:
        req = self._current()
        if req.path == HEALTH_PATH:
            status = 200 if self.healthy else 503
        else:
            if self.delay:
                time.sleep(self.delay)
            status = self.status
            try_ids = req.header("x-try-id")
            if self.fail_first_try and try_ids:
                try_id = try_ids[0]
                with self.lock:
                    first = try_id not in self._tried
                    self._tried.add(try_id)
                if first:
                    status = 503
        body = json.dumps({"origin": self.name, "path": req.path, "method": req.method,
                           "status": status}).encode()
        super()._respond(sock, status, body, head_only)

    def served(self, mark: tuple[int, int, int] = (0, 0, 0)) -> int:
        return sum(1 for r in self.requests_since(mark) if r.path != HEALTH_PATH)

    def tries(self, try_id: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if try_id in r.header("x-try-id"))
