"""Accept-Encoding negotiation and the streaming encoders, without sockets."""

from __future__ import annotations

import gzip

import brotli
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from edgeward.filters.encoding import CODINGS, Codec, choose, parse_accept

OFFERED = ("zstd", "br", "gzip")
coding = st.sampled_from(["gzip", "br", "zstd", "deflate", "identity", "*", "x-gzip"])
qvalue = st.sampled_from(["", ";q=0", ";q=0.5", ";q=1", ";q=0.001", ";q=1.0", ";Q=0.7"])
accept = st.lists(st.tuples(coding, qvalue), max_size=6).map(
    lambda items: ", ".join(c + q for c, q in items))


def test_examples() -> None:
    assert choose("gzip, deflate, br, zstd", OFFERED) == "zstd"
    assert choose("gzip, deflate, br", OFFERED) == "br"
    assert choose("br;q=0.5, gzip", OFFERED) == "gzip"
    assert choose("*;q=0.1, gzip;q=0", OFFERED) == "zstd"
    assert choose("identity", OFFERED) is None
    assert choose("", OFFERED) is None
    assert choose("gzip;q=2", OFFERED) is None          # out of range: the item is dropped
    assert choose("gzip ; q=0.8 , br;q=0.9", ("gzip",)) == "gzip"
    assert parse_accept("X-GZIP;q=0.3") == {"gzip": 0.3}


@given(accept)
def test_the_choice_is_acceptable_and_best(value: str) -> None:
    prefs = parse_accept(value)
    star = prefs.get("*", 0.0)
    q = {c: prefs.get(c, star) for c in OFFERED}
    chosen = choose(value, OFFERED)
    if chosen is None:
        assert all(v == 0 for v in q.values())
    else:
        assert q[chosen] > 0
        assert q[chosen] == max(q.values())
        # ties go to the earlier offered
        assert all(q[c] < q[chosen] for c in OFFERED[:OFFERED.index(chosen)])


@given(accept, st.permutations(list(OFFERED)))
def test_never_a_coding_that_is_not_offered(value: str, offered: list[str]) -> None:
    chosen = choose(value, tuple(offered[:2]))
    assert chosen is None or chosen in offered[:2]


CODECS = {name: Codec(name, {"gzip": 1, "br": 1, "zstd": 3}[name]) for name in CODINGS}
DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
}


@given(st.sampled_from(CODINGS), st.lists(st.binary(max_size=5000), max_size=8))
def test_streamed_pieces_decode_to_the_whole(name: str, pieces: list[bytes]) -> None:
    enc = CODECS[name].encoder()
    out = b"".join(enc.compress(p) for p in pieces) + enc.finish()
    assert DECODE[name](out) == b"".join(pieces)
    assert enc.size_in == sum(map(len, pieces)) and enc.size_out == len(out)


def test_interleaved_zstd_streams_do_not_share_a_context() -> None:
    """Two responses compressed at once (one worker, one loop) each decode to their own body;
    the finished compressor is reused by the next response."""
    codec = Codec("zstd", 3)
    a, b = codec.encoder(), codec.encoder()
    out_a = a.compress(b"a" * 5000) + b.compress(b"b" * 10) + b""
    out_b = b.compress(b"b" * 5000)
    out_a += a.compress(b"A" * 300) + a.finish()
    out_b += b.finish()
    assert DECODE["zstd"](out_a) == b"a" * 5000 + b"A" * 300
    assert DECODE["zstd"](out_b) == b"b" * 5010
    assert len(codec.idle) == 2
    c = codec.encoder()
    assert len(codec.idle) == 1
    assert DECODE["zstd"](c.compress(b"c") + c.finish()) == b"c"
