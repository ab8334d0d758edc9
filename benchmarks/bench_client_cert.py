"""Nanoseconds per `client_cert` lookup on a request, beside `api_key`'s.

    .venv/bin/python benchmarks/bench_client_cert.py

10,000 consumers, each with one API key and two `client_certs` (a fingerprint and a cn:),
and one listed by URI, DNS and email SANs.
Measured on one request head with its verified certificate (as the TLS listener attaches it):
the method found by fingerprint (the first identity looked at), by CN (the last, after the
fingerprint, URI, DNS and email tables), and an unknown certificate (every table, then the
403 refusal); and `api_key`'s lookup (header read and removal, SHA-256 of the key, dict read)
with the header put back each call, next to the cost of putting it back alone. Best of 5 runs.
The first line says whether the compiled modules were loaded.
"""
from __future__ import annotations

from typing import Any

from benchkit import best_of

import edgeward._native as native
from edgeward.auth.clientcert import ClientCertMethod
from edgeward.auth.config import ApiKeyConfig, ClientCertConfig, ConsumerConfig
from edgeward.auth.context import AuthContext
from edgeward.auth.directory import ConsumerDirectory
from edgeward.auth.keyauth import ApiKeyMethod
from edgeward.http.message import ClientCert
from edgeward.proxy.subrequest import make_head

N = 200_000
CONSUMERS = 10_000


def best(fn: Any, n: int = N) -> float:
    return best_of(fn, n, 1e9)


def fp(i: int) -> str:
    return f"{i:064x}"


def main() -> None:
    directory = ConsumerDirectory()
    configs = {f"dev-{i}": ConsumerConfig(api_keys=[f"key-{i}-0123456789abcdef"],
                                          client_certs=[fp(i), f"cn:dev-{i}"])
               for i in range(CONSUMERS)}
    # one consumer by SAN, so the URI, DNS and email tables are looked at on the way to cn:
    configs["svc"] = ConsumerConfig(client_certs=["uri:spiffe://e/svc", "dns:svc.example",
                                                  "email:svc@example"])
    resolved, problems = directory.prepare(configs, {})
    assert not problems
    directory.install_static(resolved)
    ctx = AuthContext(consumers=directory)
    method = ClientCertMethod(ClientCertConfig(), ctx, "bench")
    keys = ApiKeyMethod(ApiKeyConfig(), ctx, "bench")
    req = make_head("GET", "/", "bench", [])
    cases = {
        "fingerprint": ClientCert("CN=x", (), (), (), fp(4321), b""),
        "cn": ClientCert("CN=dev-4321", ("d.example",), ("spiffe://e/x",), ("a@e",),
                         "ff" * 32, b"", "dev-4321"),
        "unknown": ClientCert("CN=nobody", ("d.example",), ("spiffe://e/x",), ("a@e",),
                              "ee" * 32, b"", "nobody"),
    }
    print(f"compiled: {native.state}; {CONSUMERS} consumers")
    for name, cert in cases.items():
        req.client_cert = cert
        found = method.authenticate(req, 0.0)
        assert found is not None
        ns = best(lambda: method.authenticate(req, 0.0))  # noqa: B023
        print(f"client_cert by {name}: {ns:.0f} ns/request ({found!r})")
    headers = req.headers
    key = "key-4321-0123456789abcdef"
    put_back = best(lambda: headers.set("apikey", key))
    headers.set("apikey", key)
    assert repr(keys.authenticate(req, 0.0)) == "<Consumer dev-4321>"

    def with_key() -> object:
        headers.set("apikey", key)
        return keys.authenticate(req, 0.0)

    both = best(with_key)
    print(f"api_key: {both - put_back:.0f} ns/request ({both:.0f} with the header put back, "
          f"{put_back:.0f} for putting it back)")


if __name__ == "__main__":
    main()
