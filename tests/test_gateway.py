"""The worker process's life end to end: a stop signal that arrives while a worker is still
starting (its socket is bound and the kernel already queues connections on it) drains it like
any other, so a request already sent is answered and the process exits 0."""

from __future__ import annotations

import os
import signal

import pytest

from support.gateway import GatewayProcess
from support.origin import Origin
from support.rawhttp import RawConnection

CONFIG = """\
listen: {listen}
upstreams: {app: {targets: ["ORIGIN"]}}
routes: [{name: app, match: {path_prefix: /}, upstream: app}]
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_during_start_up_drains_instead_of_killing(origin: Origin, workers: int) -> None:
    # start() returns as soon as the port accepts: the socket is bound, the worker may still
    # be importing and compiling its config.
    gw = GatewayProcess.config(CONFIG.replace("ORIGIN", origin.address), workers=workers)
    gw.start()
    try:
        with RawConnection(gw.port, timeout=15) as conn:
            conn.send(b"GET /slow?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n")
            os.kill(gw.pid, signal.SIGTERM)
            resp = conn.read_response()
        assert resp.status == 200, resp
        assert resp.json()["target"] == "/slow?ms=300"
        assert resp.header("connection") == "close"
        assert gw.wait(15) == 0
    finally:
        gw.stop()
