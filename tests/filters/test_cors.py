"""The CORS policy's decisions, without sockets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgeward.filters.cors import ORIGIN_CACHE, CorsPolicy, Wildcard
from edgeward.routing.regex import compile_fullmatch


def policy(**kw: object) -> CorsPolicy:
    args: dict[str, object] = dict(origins=["https://app.example"], regexes=[],
                                   methods=["GET", "POST"], headers=["x-token"], expose=[],
                                   credentials=False, max_age=None)
    args.update(kw)
    return CorsPolicy(**args)  # type: ignore[arg-type]


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(st.lists(label, min_size=1, max_size=4))
def test_wildcard_takes_any_subdomain(labels: list[str]) -> None:
    w = Wildcard("https://*.example.com")
    assert w.matches("https://" + ".".join(labels) + ".example.com")


@given(st.text(max_size=30))
def test_wildcard_never_takes_other_shapes(middle: str) -> None:
    w = Wildcard("https://*.example.com")
    origin = "https://" + middle + ".example.com"
    ok = bool(middle) and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-." for c in middle) \
        and not middle.startswith(".")
    assert w.matches(origin) == ok
    assert not w.matches("https://example.com")
    assert not w.matches("http://a.example.com")
    assert not w.matches("https://a.example.com:444")
    assert not w.matches("https://a.example.com.evil.net")


def test_refusal_reasons() -> None:
    p = policy()
    assert p.refusal("https://app.example", "GET", None) is None
    assert p.refusal("https://APP.example", "GET", None) is None  # origins compare lower-case
    assert p.refusal("https://app.example", "POST", "X-Token") is None
    assert p.refusal("https://evil.example", "GET", None) == \
        "origin https://evil.example is not allowed"
    assert p.refusal("https://app.example", "PUT", None) == "method PUT is not allowed"
    assert p.refusal("https://app.example", "GET", "x-token, x-other") == \
        "header x-other is not allowed"


def test_regex_origins_and_any() -> None:
    p = policy(origins=[], regexes=[compile_fullmatch(r"https://[a-z]+\.example\.(com|org)")])
    assert p.allows_origin("https://shop.example.org")
    assert not p.allows_origin("https://shop.example.net")
    assert policy(origins=["*"]).allow_origin_value("https://x") == b"*"
    assert policy(origins=["*"], credentials=True).allow_origin_value("https://x") == b"https://x"
    assert not policy(origins=["*"]).varies
    assert policy().varies


def test_origin_cache_stays_bounded() -> None:
    p = policy()
    for i in range(ORIGIN_CACHE * 2 + 3):
        p.allows_origin(f"https://{i}.example")
    assert len(p.cache) <= ORIGIN_CACHE
