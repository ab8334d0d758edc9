"""compress over real sockets: negotiation by q-value, what is never compressed, the fields a
compressed response carries, and bodies that decode to what the upstream sent."""

from __future__ import annotations

import gzip
import hashlib
import zlib

import brotli
import pytest
import zstandard

from filters.conftest import BIGTEXT, Edge, json_body  # type: ignore[import-not-found]
from support.origin import pattern_sha256
from support.rawhttp import RawConnection, Response, exchange, get

DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
}


def fetch(edge: Edge, target: str, accept: str | None, host: str = "compress.test",
          **kw: object) -> Response:
    headers = [("accept-encoding", accept)] if accept is not None else []
    return get(edge.port, target, host=host, headers=headers, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("accept", "coding"), [
    ("gzip, deflate, br, zstd", "zstd"),          # equal q: the gateway's order
    ("gzip;q=1.0, br;q=0.5", "gzip"),
    ("br;q=0.9, zstd;q=0.1", "br"),
    ("x-gzip", "gzip"),
    ("*", "zstd"),
    ("*;q=0.5, zstd;q=0, br;q=0", "gzip"),
])
def test_negotiated_coding_decodes_to_the_upstream_body(edge: Edge, accept: str,
                                                        coding: str) -> None:
    resp = fetch(edge, "/json?n=50000", accept)
    assert resp.status == 200
    assert resp.header("content-encoding") == coding
    assert resp.header("content-length") is None
    assert resp.header("transfer-encoding") == "chunked"
    assert DECODE[coding](resp.body) == json_body(50000)
    assert len(resp.body) < 50000 // 5


def test_compressed_response_fields(edge: Edge) -> None:
    resp = fetch(edge, "/json?n=5000", "gzip")
    assert resp.header("vary") == "Accept-Encoding"
    assert resp.header("etag") == 'W/"v1"'         # strong made weak: the bytes differ
    assert resp.header("accept-ranges") is None


def test_existing_vary_is_extended(edge: Edge) -> None:
    resp = fetch(edge, "/vary?n=5000", "gzip")
    assert resp.header("vary") == "Cookie, Accept-Encoding"


@pytest.mark.parametrize("accept", [None, "identity", "deflate", "gzip;q=0, br;q=0, zstd;q=0",
                                    "gzip;q=bogus"])
def test_no_acceptable_coding_sends_the_body_as_is_with_vary(edge: Edge,
                                                             accept: str | None) -> None:
    resp = fetch(edge, "/json?n=5000", accept)
    assert resp.header("content-encoding") is None
    assert resp.header("content-length") == "5000"
    assert resp.body == json_body(5000)
    assert resp.header("vary") == "Accept-Encoding"
    assert resp.header("etag") == '"v1"'


@pytest.mark.parametrize("target", [
    "/json?n=1000",            # under min_size (1 KiB)
    "/encoded?n=5000",         # already encoded
    "/no-transform?n=5000",    # Cache-Control: no-transform
    "/partial?n=5000",         # 206 with Content-Range
    "/json?n=5000&type=image/png",
    "/no-type?n=5000",
])
def test_not_compressed(edge: Edge, target: str) -> None:
    resp = fetch(edge, target, "gzip, br, zstd")
    assert resp.header("content-encoding") in (None, "gzip")
    if "/encoded" not in target:
        assert resp.header("content-encoding") is None
    assert len(resp.body) == int(target.split("n=")[1].split("&")[0])


def test_unknown_length_is_compressed_as_it_streams(edge: Edge) -> None:
    resp = fetch(edge, "/chunked?n=30000", "br")
    assert resp.header("content-encoding") == "br"
    assert brotli.decompress(resp.body) == json_body(30000)


def test_http10_clients_get_the_body_as_is(edge: Edge) -> None:
    resp = exchange(edge.port, b"GET /json?n=5000 HTTP/1.0\r\nHost: compress.test\r\n"
                               b"Accept-Encoding: gzip\r\n\r\n")
    assert resp.header("content-encoding") is None
    assert resp.body == json_body(5000)


def test_head_is_left_as_the_upstream_sent_it(edge: Edge) -> None:
    resp = exchange(edge.port, b"HEAD /json?n=5000 HTTP/1.1\r\nHost: compress.test\r\n"
                               b"Accept-Encoding: gzip\r\n\r\n", head_request=True)
    assert resp.status == 200 and resp.body == b""
    assert resp.header("content-encoding") is None


def test_configured_algorithms_only(edge: Edge) -> None:
    resp = fetch(edge, "/json?n=5000", "zstd, br", host="gzip.test")
    assert resp.header("content-encoding") is None
    resp = fetch(edge, "/json?n=5000", "zstd, br, gzip", host="gzip.test")
    assert resp.header("content-encoding") == "gzip"


def test_a_direct_reply_is_compressed_too(edge: Edge) -> None:
    resp = fetch(edge, "/", "gzip", host="compress-respond.test")
    assert resp.header("content-encoding") == "gzip"
    assert gzip.decompress(resp.body) == BIGTEXT.encode()


def test_keep_alive_connection_serves_compressed_and_plain_in_turn(edge: Edge) -> None:
    with RawConnection(edge.port) as conn:
        for accept in ("gzip", "identity", "zstd", "gzip"):
            conn.send(b"GET /json?n=4000 HTTP/1.1\r\nHost: compress.test\r\n"
                      b"Accept-Encoding: %s\r\n\r\n" % accept.encode())
            resp = conn.read_response()
            body = resp.body
            coding = resp.header("content-encoding")
            if coding is not None:
                body = DECODE[coding](body)
            assert body == json_body(4000)


def test_large_body_streams_through_with_bounded_memory(edge: Edge) -> None:
    """256 MiB through gzip: the gateway's memory stays bounded (sampled as the body
    arrives); the decoded stream is the upstream's exactly."""
    n = 256 << 20
    gw = edge.gw.gw
    base = gw.rss_kb()
    peak = base
    decoder = zlib.decompressobj(31)
    digest = hashlib.sha256()
    received = 0

    def sink(piece: bytes) -> None:
        nonlocal peak, received
        digest.update(decoder.decompress(piece))
        received += len(piece)
        if received % (1 << 20) < len(piece):
            peak = max(peak, gw.rss_kb())

    with RawConnection(edge.port, timeout=120) as conn:
        conn.send(b"GET /big?bytes=%d HTTP/1.1\r\nHost: compress-big.test\r\n"
                  b"Accept-Encoding: gzip\r\n\r\n" % n)
        resp = conn.read_response(sink=sink)
    assert resp.header("content-encoding") == "gzip"
    digest.update(decoder.flush())
    assert digest.hexdigest() == pattern_sha256(n)
    assert received < n // 10
    assert peak - base < 32 * 1024, f"gateway RSS grew {peak - base} KiB"
