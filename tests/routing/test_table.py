"""RouteTable: documented precedence, checked against a brute-force reference over random sets."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.request import SimpleRequest
from edgeward.routing.config import MatchConfig
from edgeward.routing.table import RouteTable


def req(host: str = "api.example.com", path: str = "/", method: str = "GET",
        headers: dict[str, str] | None = None) -> SimpleRequest:
    return SimpleRequest(method=method, host=host, path=path, headers=headers)


# --- the reference: the documented precedence, written as a sort key over every route ------------

def _host_rank(m: MatchConfig, host: str) -> tuple[int, int] | None:
    best: tuple[int, int] | None = None
    for pat in m.host_patterns():
        rank: tuple[int, int] | None = None
        if pat == "*":
            rank = (2, 0)
        elif pat.startswith("*."):
            suffix = pat[1:]
            if host.endswith(suffix) and len(host) > len(suffix):
                rank = (1, -len(suffix))
        elif pat == host:
            rank = (0, 0)
        if rank is not None and (best is None or rank < best):
            best = rank
    return best


def _path_rank(m: MatchConfig, path: str) -> tuple[int, int] | None:
    if m.path is not None:
        return (0, 0) if path == m.path else None
    if m.path_prefix is not None:
        return (1, -len(m.path_prefix)) if path.startswith(m.path_prefix) else None
    if m.path_regex is not None:
        return (2, 0) if re.fullmatch(m.path_regex, path) else None
    return (3, 0)


def _conditions_hold(m: MatchConfig, r: SimpleRequest) -> bool:
    if m.methods and r.method not in {x.upper() for x in m.methods}:
        return False
    if any(r.header(k) != v for k, v in m.headers.items()):
        return False
    return all(r.header(k) is not None for k in m.header_present)


def reference(routes: list[tuple[MatchConfig, int]], r: SimpleRequest) -> int | None:
    best: tuple[tuple[int, int], tuple[int, int], int] | None = None
    for order, (m, _) in enumerate(routes):
        hr = _host_rank(m, r.host)
        pr = _path_rank(m, r.path)
        if hr is None or pr is None or not _conditions_hold(m, r):
            continue
        key = (hr, pr, order)
        if best is None or key < best:
            best = key
    return None if best is None else routes[best[2]][1]


# --- random route sets over a small alphabet, so that collisions and overlaps are frequent -------

HOSTS = ["a.b", "x.a.b", "y.x.a.b", "c", "b.c", "a.b.c"]
HOST_PATTERNS = [*HOSTS, "*.b", "*.a.b", "*.x.a.b", "*.c", "*.b.c", "*"]
REGEXES = [r"/a.*", r"/[ab]+", r"/b/.*", r".*b", r"/a/b", r"/(a|b)/?"]
paths = st.text(alphabet="/ab", max_size=6).map(lambda s: "/" + s)
# Route paths and prefixes from a small pool, nested in each other, so that routes overlap often.
route_paths = st.one_of(st.sampled_from(["/", "/a", "/a/", "/a/b", "/ab", "/b", "/b/a"]), paths)

path_cond = st.one_of(
    st.fixed_dictionaries({}),
    st.fixed_dictionaries({"path": route_paths}),
    st.fixed_dictionaries({"path_prefix": route_paths}),
    st.fixed_dictionaries({"path_regex": st.sampled_from(REGEXES)}),
)
host_cond = st.one_of(
    st.fixed_dictionaries({}),
    st.fixed_dictionaries({"host": st.sampled_from(HOST_PATTERNS)}),
    st.fixed_dictionaries({"hosts": st.lists(st.sampled_from(HOST_PATTERNS), max_size=3)}),
)


@st.composite
def match_configs(draw: st.DrawFn) -> MatchConfig:
    kw: dict[str, object] = {**draw(host_cond), **draw(path_cond)}
    # Conditions are drawn rarely, so that several routes often accept the same request and the
    # precedence between them (not the filters) decides.
    kw["methods"] = draw(st.sampled_from([[], [], [], ["GET"], ["post", "PUT"]]))
    kw["headers"] = draw(st.sampled_from([{}, {}, {}, {"x-k": "1"}, {"X-V": "2"}]))
    kw["header_present"] = draw(st.sampled_from([[], [], [], ["x-p"]]))
    m = MatchConfig(**kw)  # type: ignore[arg-type]
    assert m.check() == [], m.check()
    return m


requests = st.builds(
    req,
    host=st.sampled_from([*HOSTS, "z", "q.b", "b"]),
    path=paths,
    method=st.sampled_from(["GET", "GET", "POST", "PUT", "DELETE"]),
    headers=st.dictionaries(st.sampled_from(["x-k", "x-v", "x-p"]),
                            st.sampled_from(["1", "2"]), max_size=3),
)


def _keys(matches: list[MatchConfig]) -> list[str]:
    """Paths and prefixes the routes name: requests are built on them so that routes collide."""
    return [k for m in matches for k in (m.path, m.path_prefix) if k is not None] or ["/"]


@settings(max_examples=400, deadline=None)
@given(st.lists(match_configs(), max_size=25), st.data())
def test_table_agrees_with_brute_force_reference(
    matches: list[MatchConfig], data: st.DataObject
) -> None:
    routes = [(m, i) for i, m in enumerate(matches)]
    table = RouteTable(routes)
    keys = _keys(matches)
    for i in range(20):
        r = data.draw(requests)
        if i % 4:  # mostly on a route's own path or prefix, plus a random tail
            r.path = data.draw(st.sampled_from(keys)) + data.draw(st.text("/ab", max_size=3))
        expected = reference(routes, r)
        assert table.match(r) == expected, (r.host, r.path, r.method)
        assert table.match_index(r) == expected


# --- the documented precedence, example by example ----------------------------------------------

def test_exact_host_beats_longer_wildcard_beats_shorter_wildcard_beats_any() -> None:
    t = RouteTable([
        (MatchConfig(), "any"),
        (MatchConfig(host="*.example.com"), "wild"),
        (MatchConfig(host="*.eu.example.com"), "wild-eu"),
        (MatchConfig(host="api.eu.example.com"), "exact"),
    ])
    assert t.match(req(host="api.eu.example.com")) == "exact"
    assert t.match(req(host="web.eu.example.com")) == "wild-eu"
    assert t.match(req(host="a.b.example.com")) == "wild"
    assert t.match(req(host="example.com")) == "any"  # *.example.com needs a label before it
    assert t.match(req(host="other.org")) == "any"


def test_exact_path_beats_longest_prefix_beats_regex_beats_no_path() -> None:
    t = RouteTable([
        (MatchConfig(), "catch-all"),
        (MatchConfig(path_regex=r"/orders/\d+"), "regex"),
        (MatchConfig(path_prefix="/orders"), "short"),
        (MatchConfig(path_prefix="/orders/7"), "long"),
        (MatchConfig(path="/orders/7"), "exact"),
    ])
    assert t.match(req(path="/orders/7")) == "exact"
    assert t.match(req(path="/orders/77")) == "long"
    assert t.match(req(path="/orders/8")) == "short"
    assert t.match(req(path="/users")) == "catch-all"
    t2 = RouteTable([(MatchConfig(), "catch-all"), (MatchConfig(path_regex=r"/o/\d+"), "regex")])
    assert t2.match(req(path="/o/12")) == "regex"
    assert t2.match(req(path="/o/12x")) == "catch-all"  # regex must match the whole path


def test_prefix_is_a_plain_string_prefix_as_in_envoy() -> None:
    t = RouteTable([(MatchConfig(path_prefix="/api"), "api"),
                    (MatchConfig(path_prefix="/app/"), "app")])
    assert t.match(req(path="/apix")) == "api"
    assert t.match(req(path="/app")) is None
    assert t.match(req(path="/app/1")) == "app"


def test_same_key_config_order_and_method_header_filters() -> None:
    t = RouteTable([
        (MatchConfig(path_prefix="/o", methods=["post"]), "write"),
        (MatchConfig(path_prefix="/o", headers={"X-Canary": "1"}), "canary"),
        (MatchConfig(path_prefix="/o"), "read"),
        (MatchConfig(path_prefix="/o", methods=["GET"]), "never"),
    ])
    assert t.match(req(path="/o/1", method="POST")) == "write"
    assert t.match(req(path="/o/1", headers={"x-canary": "1"})) == "canary"
    assert t.match(req(path="/o/1", headers={"x-canary": "0"})) == "read"
    assert t.match(req(path="/o/1", method="DELETE")) == "read"


def test_a_tier_whose_routes_all_refuse_falls_through() -> None:
    t = RouteTable([
        (MatchConfig(host="api.example.com", path="/x", methods=["POST"]), "exact-post"),
        (MatchConfig(host="api.example.com", path_prefix="/y"), "exact-y"),
        (MatchConfig(host="*.example.com", path_prefix="/x"), "wild-x"),
        (MatchConfig(path_prefix="/"), "root"),
    ])
    assert t.match(req(path="/x", method="POST")) == "exact-post"
    assert t.match(req(path="/x", method="GET")) == "wild-x"
    assert t.match(req(path="/z")) == "root"


def test_header_present_and_hosts_list() -> None:
    t = RouteTable([
        (MatchConfig(hosts=["a.com", "*.b.com"], header_present=["authorization"]), "authed"),
        (MatchConfig(hosts=["a.com", "*.b.com"]), "anon"),
    ])
    assert t.match(req(host="a.com", headers={"Authorization": ""})) == "authed"
    assert t.match(req(host="x.b.com")) == "anon"
    assert t.match(req(host="b.com")) is None


def test_config_hosts_are_case_insensitive_and_no_match_is_none() -> None:
    t = RouteTable([(MatchConfig(host="API.Example.com"), 1)])
    assert t.match(req(host="api.example.com")) == 1
    assert t.match(req(host="web.example.com")) is None
    assert RouteTable([]).match(req()) is None
    assert repr(t) == "<RouteTable routes=1 exact_hosts=1 wildcard_hosts=0 any_host=False>"


# --- gRPC service and method matches ------------------------------------------------------------

def test_grpc_matches_service_method_and_content_type() -> None:
    from edgeward.routing.config import GrpcMatchConfig

    table = RouteTable([
        (MatchConfig(grpc=GrpcMatchConfig(service="pkg.Svc", method="Get")), "get"),
        (MatchConfig(grpc=GrpcMatchConfig(service="pkg.Svc")), "svc"),
        (MatchConfig(), "rest"),
    ])
    grpc = {"content-type": "application/grpc"}
    web = {"content-type": "application/grpc-web-text+proto"}
    assert table.match(req(path="/pkg.Svc/Get", method="POST", headers=grpc)) == "get"
    assert table.match(req(path="/pkg.Svc/Put", method="POST", headers=web)) == "svc"
    assert table.match(req(path="/pkg.Svc/Get", method="POST")) == "rest"  # not gRPC
    assert table.match(req(path="/pkg.Svc/Get", headers={"content-type": "text/plain"})) == "rest"
    assert table.match(req(path="/pkg.SvcX/Get", method="POST", headers=grpc)) == "rest"


def test_a_lone_grpc_route_is_not_a_catch_all() -> None:
    from edgeward.routing.config import GrpcMatchConfig

    table = RouteTable([(MatchConfig(grpc=GrpcMatchConfig(service="a.B")), "b")])
    assert table.match(req(path="/")) is None
    assert table.match(req(path="/a.B/C", headers={"content-type": "application/grpc"})) == "b"


def test_grpc_match_config_problems() -> None:
    from edgeward.routing.config import GrpcMatchConfig

    assert MatchConfig(grpc=GrpcMatchConfig(service="pkg.Svc"), path="/x").check() == [
        ("grpc", "give either grpc or path, not both")]
    assert GrpcMatchConfig(service="pkg/Svc", method="a.b").check() == [
        ("service", "'pkg/Svc' is not a protobuf service name (pkg.Service)"),
        ("method", "'a.b' is not a protobuf method name")]
