"""An origin scripted by the test: it records each request head byte for byte and answers
with what the test says, or, deaf, accepts connections and never reads from them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

Reply = Callable[[bytes], bytes]


def ok(body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)


class ScriptedOrigin:
    """Answers each request head with `reply(head)` (requests here have no bodies). A deaf
    one reads nothing: its receive buffer fills, then its peer's send buffer."""

    def __init__(self, *, deaf: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.deaf = deaf
        self.heads: list[tuple[int, bytes]] = []  # (connection number, head)
        self.reply: Reply = lambda head: ok()
        self.lock = threading.Lock()
        self.conns = 0
        self.held: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                number = self.conns
            if self.deaf:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                with self.lock:
                    self.held.append(conn)
                continue
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buf = b""
        with conn:
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                    continue
                head, buf = buf[:end + 4], buf[end + 4:]
                with self.lock:
                    self.heads.append((number, head))
                try:
                    conn.sendall(self.reply(head))
                except OSError:
                    return

    def take(self) -> list[tuple[int, bytes]]:
        with self.lock:
            heads, self.heads = self.heads, []
        return heads

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()
        with self.lock:
            held, self.held = self.held, []
        for conn in held:
            conn.close()
