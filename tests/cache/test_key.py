"""Cache keys and invalidation rules from request heads."""

from __future__ import annotations

from edgeward.auth.consumer import Consumer
from edgeward.cache.key import KeySpec, variant, vary_names
from edgeward.cache.rules import PurgeRule
from edgeward.proxy.subrequest import make_head


def head(target: str, fields: list[tuple[str, str]] | None = None, method: str = "GET"):
    return make_head(method, target, "api.test", fields)


def test_query_selection_sorts_and_drops_unlisted() -> None:
    spec = KeySpec(query=("page", "sort"))
    assert spec.base(head("/l?utm=1&sort=a&page=2")) == "api.test/l?page=2&sort=a"
    assert spec.base(head("/l?utm=1")) == "api.test/l"
    assert KeySpec().base(head("/l?b=1&a=2")) == "api.test/l?b=1&a=2"
    assert KeySpec(query=()).base(head("/l?b=1")) == "api.test/l"


def test_fields_method_and_consumer_split_the_primary_key() -> None:
    spec = KeySpec(method=True, fields=("X-Tenant",), consumer=True)
    a = head("/p", [("x-tenant", "a")])
    b = head("/p", [("x-tenant", "b")])
    assert spec.primary(a, "api.test/p") != spec.primary(b, "api.test/p")
    a.consumer = Consumer("alice")
    assert spec.primary(a, "api.test/p").endswith("alice")
    assert spec.primary(head("/p", method="HEAD"), "b") != spec.primary(head("/p"), "b")


def test_vary_values_are_normalised() -> None:
    names = vary_names("Accept-Language, accept-encoding")
    assert names == ("accept-encoding", "accept-language")
    one = head("/p", [("accept-language", "en,  fr"), ("accept-encoding", "gzip")])
    two = head("/p", [("accept-encoding", "gzip"), ("accept-language", "en"),
                      ("accept-language", "fr")])
    assert variant("p", one, names) == variant("p", two, names)
    assert variant("p", one, ()) == "p"


def test_purge_rule_fills_the_template() -> None:
    rule = PurgeRule("/api/users/{id}", ("PUT", "DELETE"), ("/api/users/{id}", "/api/users"),
                     ("/api/users/{id}/",), ("user-{id}",))
    assert rule.targets(head("/api/users/7", method="PUT")) == [
        ("key", "api.test/api/users/7"), ("prefix", "api.test/api/users/7?"),
        ("key", "api.test/api/users"), ("prefix", "api.test/api/users?"),
        ("prefix", "api.test/api/users/7/"), ("tag", "user-7")]
    assert rule.targets(head("/api/users/7", method="POST")) == []
    assert rule.targets(head("/api/users/7/x", method="PUT")) == []
