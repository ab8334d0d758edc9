from __future__ import annotations

import pytest

from edgeward.auth.consumer import Consumer
from edgeward.ratelimit.keys import MAX_PLAIN, digest, parse_key_spec
from edgeward.request import SimpleRequest

REQ = SimpleRequest(client_ip="10.0.0.7", headers={"X-Api-Key": "k1"}, consumer=Consumer("acme"))
BARE = SimpleRequest(client_ip="10.0.0.8")


@pytest.mark.parametrize(
    ("spec", "request_key", "bare_key"),
    [
        ("client_ip", "ip:10.0.0.7", "ip:10.0.0.8"),
        ("route", "route:orders", "route:orders"),
        ("header:X-API-KEY", "h:" + digest("k1"), "ip:10.0.0.8"),
        ("consumer", "c:acme", "ip:10.0.0.8"),
    ],
)
def test_keys_per_spec_with_client_ip_fallback(spec: str, request_key: str, bare_key: str) -> None:
    key = parse_key_spec(spec)
    assert key.extract(REQ, "orders") == request_key
    assert key.extract(BARE, "orders") == bare_key


def test_a_header_value_cannot_impersonate_a_client_ip_key() -> None:
    key = parse_key_spec("header:x-user")
    forged = SimpleRequest(client_ip="1.1.1.1", headers={"x-user": "ip:10.0.0.8"})
    assert key.extract(forged, "r") != parse_key_spec("client_ip").extract(BARE, "r")


def test_a_consumer_header_sent_by_the_client_is_no_consumer() -> None:
    key = parse_key_spec("consumer")
    forged = SimpleRequest(client_ip="10.0.0.9", headers={"x-consumer-id": "acme"})
    assert key.extract(forged, "r") == "ip:10.0.0.9"


@pytest.mark.parametrize("bad", ["ip", "header:", "header:a b", "Client_IP"])
def test_unknown_specs_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="key|header"):
        parse_key_spec(bad)


def test_client_chosen_values_become_fixed_size_keys() -> None:
    key = parse_key_spec("header:x-api-key")
    short = key.extract(SimpleRequest(headers={"x-api-key": "k"}), "r")
    huge = key.extract(SimpleRequest(headers={"x-api-key": "k" * 30_000}), "r")
    other = key.extract(SimpleRequest(headers={"x-api-key": "k" * 29_999 + "j"}), "r")
    assert len(short) == len(huge) == len(other) == 2 + 32
    assert len({short, huge, other}) == 3
    for spec in ("cookie:s", "query:q", "path"):
        value = parse_key_spec(spec).extract(SimpleRequest(
            path="/" + "p" * 5000, cookies={"s": "c" * 5000}, query={"q": "q" * 5000}), "r")
        assert len(value) == 2 + 32, spec


def test_plain_values_stay_readable_unless_too_long() -> None:
    ip = parse_key_spec("client_ip")
    assert ip.extract(SimpleRequest(client_ip="2001:db8::1"), "r") == "ip:2001:db8::1"
    odd = ip.extract(SimpleRequest(client_ip="x" * (MAX_PLAIN + 1)), "r")
    assert odd == "ip:#" + digest("x" * (MAX_PLAIN + 1))
    assert parse_key_spec("route").extract(BARE, "r" * 500) == "route:#" + digest("r" * 500)
