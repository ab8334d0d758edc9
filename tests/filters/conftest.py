"""One real gateway for the built-in filter end-to-end tests, with every filter form on its
own route (chosen by Host), in front of real origins on 127.0.0.1:

  echo     tests/support/origin.py: answers what it received (JSON), records every request
  content  a scripted origin answering by path with bodies of chosen size, type and fields
           (for compression, response headers and CORS replacement)
  shadow   another recording Origin, the mirror's target
  stuck    a scripted origin whose answers wait until the test releases them

`server.trusted_proxies: [127.0.0.1/32]` lets a test speak for another client address with
X-Forwarded-For (the IP filter reads the client after trusted proxies); a connection from
127.0.0.2, which is not trusted, cannot.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.observability.obskit import AdminGateway

from support.gateway import free_port
from support.origin import Origin
from support.scripted import ScriptedOrigin

# A stand-in for an authentication filter (ORDER_AUTH): refuses everything, so a test sees
# what reached it. Written where the gateway's Python can import it.
AUTH_FILTER = '''
from edgeward.filters import ORDER_AUTH, Filter, Reply

class DenyAll(Filter):
    order = ORDER_AUTH

    def on_request(self, req):
        return Reply.error(401, "unauthorized", "the stand-in auth filter refuses all")


class Broken(Filter):
    def on_request(self, req):
        raise RuntimeError("a bug in a user's filter")
'''

CONFIG = """\
listen: {listen}
admin: {admin}
server: {trusted_proxies: [127.0.0.1/32]}
upstreams:
  echo: {targets: [ECHO]}
  content: {targets: [CONTENT]}
  shadow: {targets: [SHADOW]}
  stuck: {targets: [STUCK]}
  dead: {targets: ["127.0.0.1:DEAD"], connect_timeout: 200ms}
filters:
  web-cors:
    cors: {allow_origins: ["https://app.example", "https://*.corp.example"],
           allow_methods: [GET, POST, PUT], allow_headers: [content-type, x-token],
           expose_headers: [x-trace], allow_credentials: true, max_age: 10m}
  gz: {compress: {algorithms: [gzip], min_size: 1KiB}}
routes:
  - name: headers
    match: {host: headers.test}
    upstream: echo
    filters:
      - request_headers:
          remove: [x-debug]
          set: {x-env: prod, x-forwarded-proto: https}
          add: {x-via: "${route}", x-who: "${client_ip} ${request_id}",
                x-tenant: "t-${header:x-user}", x-up: "${upstream}"}
  - name: big_headers
    match: {host: big-headers.test}
    upstream: echo
    filters:
      - request_headers: {add: {x-copy1: "${header:x-big}", x-copy2: "${header:x-big}"}}
  - name: resp_headers
    match: {host: resp-headers.test}
    upstream: content
    filters:
      - response_headers:
          remove: [server]
          set: {strict-transport-security: "max-age=31536000", x-frame-options: DENY}
          add: {x-served-by: "${upstream} ${route}"}
  - name: resp_add
    match: {host: resp-add.test}
    upstream: content
    filters: [{response_headers: {add: {x-edge: "1"}}}]
  - {name: strip, match: {host: strip.test}, upstream: echo, filters: [{strip_prefix: /api}]}
  - name: rewrite_prefix
    match: {host: rewrite-prefix.test}
    upstream: echo
    filters: [{rewrite: {prefix: /api, to: /v2}}]
  - name: rewrite_regex
    match: {host: rewrite-regex.test}
    upstream: echo
    filters: [{rewrite: {regex: "/u/(\\\\d+)/(\\\\w+)", to: "/users/\\\\2/\\\\1"}}]
  - name: rewrite_evil
    match: {host: rewrite-evil.test}
    upstream: echo
    filters: [{rewrite: {regex: "/v1/users/([A-Za-z0-9_-]+/?)+", to: "/users/\\\\1"}}]
  - name: rewrite_host
    match: {host: rewrite-host.test}
    upstream: echo
    filters: [{rewrite: {host: "internal.example:8443"}}]
  - name: moved
    match: {host: redirect.test, path_prefix: /old}
    redirect: {path_prefix: /new, status: 308}
  - name: https
    match: {host: https.test}
    redirect: {https_redirect: true}
  - name: elsewhere
    match: {host: elsewhere.test}
    redirect: {host: other.example, port: 8443, path: /landing, strip_query: true, status: 302}
  - {name: ping, match: {host: respond.test, path: /ping}, respond: {body: pong}}
  - name: maintenance
    match: {host: respond.test, path: /down}
    respond: {status: 503, file: MAINTENANCE, headers: {retry-after: "120"}}
  - name: cors
    match: {host: cors.test}
    upstream: content
    filters: [web-cors]
  - name: cors_auth
    match: {host: cors-auth.test}
    upstream: echo
    filters: [{python: "edge_auth:DenyAll"}, web-cors]
  - name: broken
    match: {host: broken.test}
    upstream: echo
    filters: [{python: "edge_auth:Broken"}, {response_headers: {add: {x-passed: "1"}}},
              {cors: {allow_origins: ["*"]}}]
  - name: cors_any
    match: {host: cors-any.test}
    upstream: echo
    filters: [{cors: {allow_origins: ["*"], allow_methods: ["*"]}}]
  - {name: ip_allow, match: {host: ip-allow.test}, upstream: echo,
     filters: [{ip: {allow: [10.0.0.0/8, "2001:db8::/32", 127.0.0.1]}}]}
  - {name: ip_deny, match: {host: ip-deny.test}, upstream: echo,
     filters: [{ip: {allow: [10.0.0.0/8], deny: [10.6.6.0/24]}}]}
  - {name: compress, match: {host: compress.test}, upstream: content, filters: [{compress: {}}]}
  - name: compress_big
    match: {host: compress-big.test}
    upstream: echo
    filters: [{compress: {algorithms: [gzip], content_types: ["application/*"]}}]
  - {name: compress_gz, match: {host: gzip.test}, upstream: content, filters: [gz]}
  - name: compress_ping
    match: {host: compress-respond.test}
    respond: {body: BIGTEXT}
    filters: [gz]
  - name: mirror
    match: {host: mirror.test}
    upstream: echo
    filters: [{mirror: {upstream: shadow, max_body: 4KiB}}, {strip_prefix: /m}]
  - name: mirror_stuck
    match: {host: mirror-stuck.test}
    upstream: echo
    filters: [{mirror: {upstream: stuck, timeout: 5s}}]
  - name: mirror_dead
    match: {host: mirror-dead.test}
    upstream: echo
    filters: [{mirror: {upstream: dead}}]
  - name: mirror_none
    match: {host: mirror-none.test}
    upstream: echo
    filters: [{mirror: {upstream: shadow, percent: 0}}]
  - name: fault_abort
    match: {host: fault-abort.test}
    upstream: echo
    filters: [{fault: {abort: {status: 418}}}]
  - name: fault_when
    match: {host: fault-when.test}
    upstream: echo
    filters: [{fault: {abort: {status: 503}, delay: {duration: 300ms},
                       when: {header: {x-chaos: "1"}}}}]
  - name: fault_delay
    match: {host: fault-delay.test}
    upstream: echo
    timeout: 5s
    filters: [{fault: {delay: {duration: 400ms}}}]
  - name: fault_slow
    match: {host: fault-slow.test}
    upstream: echo
    timeout: 200ms
    filters: [{fault: {delay: {duration: 10s}}}]
  - name: fault_none
    match: {host: fault-none.test}
    upstream: echo
    filters: [{fault: {abort: {status: 503, percent: 0}, delay: {duration: 10s, percent: 0}}}]
"""


def json_body(n: int) -> bytes:
    """n bytes of JSON text (an array of similar objects, cut and closed to size)."""
    item = b'{"id":1234,"name":"alpha-beta","tags":["x","y"],"ok":true},'
    raw = b"[" + item * (n // len(item) + 1)
    return raw[:n - 1] + b"]"


def content_reply(head: bytes) -> bytes:
    """The scripted content origin: a JSON (or other) body of ?n= bytes, with the fields the
    path asks for; `server: scripted-origin` on every answer."""
    target = head.split(b" ", 2)[1].decode()
    url = urlsplit(target)
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    n = int(q.get("n", "4096"))
    body = json_body(n)
    fields = [("server", "scripted-origin"), ("content-type", q.get("type", "application/json")),
              ("etag", '"v1"'), ("accept-ranges", "bytes")]
    status = 200
    path = url.path
    if path == "/encoded":
        fields.append(("content-encoding", "gzip"))
    elif path == "/no-transform":
        fields.append(("cache-control", "public, no-transform"))
    elif path == "/partial":
        status = 206
        fields.append(("content-range", f"bytes 0-{n - 1}/{n * 2}"))
    elif path == "/vary":
        fields.append(("vary", "Cookie"))
    elif path == "/cors":
        fields.append(("access-control-allow-origin", "https://upstream.example"))
    elif path == "/no-type":
        fields = [f for f in fields if f[0] != "content-type"]
    head_lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in fields]
    if path == "/chunked":
        chunks = b"".join(b"%x\r\n%b\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                          for i in range(0, len(body), 1000))
        return ("\r\n".join(head_lines) + "\r\ntransfer-encoding: chunked\r\n\r\n").encode() \
            + chunks + b"0\r\n\r\n"
    head_lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(head_lines) + "\r\n\r\n").encode() + body


class Stuck:
    """A scripted origin whose answers wait for `release` (set by the test)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.origin = ScriptedOrigin()
        self.origin.reply = self._reply

    def _reply(self, head: bytes) -> bytes:
        self.arrived.set()
        self.release.wait(30)
        return b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@dataclass
class Edge:
    gw: AdminGateway
    echo: Origin
    content: ScriptedOrigin
    shadow: Origin
    stuck: Stuck
    maintenance: bytes

    @property
    def port(self) -> int:
        return self.gw.port

    def seen(self, resp_body: bytes) -> dict[str, list[str]]:
        """The echo origin's view of the request's headers (name -> values)."""
        out: dict[str, list[str]] = {}
        for name, value in json.loads(resp_body)["headers"]:
            out.setdefault(name.lower(), []).append(value)
        return out


BIGTEXT = "compressible text of a direct reply. " * 200


@pytest.fixture(scope="package")
def edge() -> Iterator[Edge]:
    workdir = Path(tempfile.mkdtemp(prefix="edgeward-filters-"))
    (workdir / "edge_auth.py").write_text(AUTH_FILTER)
    maintenance = b"<html><body>Back soon.</body></html>\n"
    (workdir / "maintenance.html").write_bytes(maintenance)
    with Origin() as echo, Origin() as shadow:
        content = ScriptedOrigin()
        content.reply = content_reply
        stuck = Stuck()
        text = (CONFIG.replace("ECHO", echo.address).replace("CONTENT", content.address)
                .replace("SHADOW", shadow.address).replace("STUCK", stuck.origin.address)
                .replace("DEAD", str(free_port()))
                .replace("MAINTENANCE", str(workdir / "maintenance.html"))
                .replace("BIGTEXT", json.dumps(BIGTEXT)))
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(workdir), *([old] if old else [])])
        try:
            with AdminGateway(text) as gw:
                yield Edge(gw, echo, content, shadow, stuck, maintenance)
        finally:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old
            stuck.release.set()
            stuck.origin.stop()
            content.stop()
