"""Every new key, given a bad value, is refused at load with the file, its key path and the
reason; the data plane never sees it. `pytest -s` prints each message (docs/filters.md lists
them)."""

from __future__ import annotations

import pytest

from edgeward.config.text import load_text
from edgeward.structs import ConfigError

BASE = """\
listen: 127.0.0.1:8080
upstreams:
  app: {targets: ["127.0.0.1:9"]}
routes:
  - name: r
    match: {path_prefix: /api}
    ROUTE
"""

F = "upstream: app\n    filters: "

# (what is wrong, the route's lines, the key path reported, a part of the reason)
CASES = [
    # request_headers / response_headers
    ("framing name", F + '[{request_headers: {set: {content-length: "1"}}}]',
     "routes[0].filters[0].request_headers.set.content-length", "framing or hop-by-hop"),
    ("hop-by-hop add", F + '[{response_headers: {add: {connection: close}}}]',
     "routes[0].filters[0].response_headers.add.connection", "framing or hop-by-hop"),
    ("remove framing", F + "[{request_headers: {remove: [transfer-encoding]}}]",
     "routes[0].filters[0].request_headers.remove[0]", "framing or hop-by-hop"),
    ("gateway's request id", F + '[{request_headers: {set: {x-request-id: a}}}]',
     "routes[0].filters[0].request_headers.set.x-request-id", "the gateway sets X-Request-Id"),
    ("traceparent", F + "[{request_headers: {remove: [traceparent]}}]",
     "routes[0].filters[0].request_headers.remove[0]", "traceparent"),
    ("host via headers", F + '[{request_headers: {set: {host: a.example}}}]',
     "routes[0].filters[0].request_headers.set.host", "rewrite: {host"),
    ("response request id", F + "[{response_headers: {remove: [x-request-id]}}]",
     "routes[0].filters[0].response_headers.remove[0]", "X-Request-Id"),
    ("not a token", F + '[{request_headers: {add: {"bad name": x}}}]',
     "routes[0].filters[0].request_headers.add.bad name", "not a header name"),
    ("unknown variable", F + '[{request_headers: {add: {x-a: "${nope}"}}}]',
     "routes[0].filters[0].request_headers.add.x-a", "unknown variable ${nope}"),
    ("bad header variable", F + '[{request_headers: {add: {x-a: "${header:a b}"}}}]',
     "routes[0].filters[0].request_headers.add.x-a", "is not a header name"),
    ("lone dollar", F + '[{request_headers: {add: {x-a: "5$"}}}]',
     "routes[0].filters[0].request_headers.add.x-a", "a $ must start"),
    ("value with CR", F + '[{response_headers: {set: {x-a: "a\\rb"}}}]',
     "routes[0].filters[0].response_headers.set.x-a", "CR, LF or NUL"),
    ("empty headers", F + "[{request_headers: {}}]",
     "routes[0].filters[0].request_headers", "give at least one of remove, set, add"),
    ("set not a mapping", F + "[{request_headers: {set: [a]}}]",
     "routes[0].filters[0].request_headers.set", "expected a mapping"),
    # strip_prefix / rewrite
    ("strip relative", F + "[{strip_prefix: api}]",
     "routes[0].filters[0].strip_prefix.prefix", "expected an absolute path"),
    ("strip not a string", F + "[{strip_prefix: 5}]",
     "routes[0].filters[0].strip_prefix.prefix", "expected a string, got 5"),
    ("backreference", F + '[{rewrite: {regex: "/(a)\\\\1", to: /x}}]',
     "routes[0].filters[0].rewrite.regex", "does not compile as an RE2 pattern"),
    ("lookahead", F + '[{rewrite: {regex: "/(?=a)", to: /x}}]',
     "routes[0].filters[0].rewrite.regex", "does not compile as an RE2 pattern"),
    ("missing group", F + '[{rewrite: {regex: "/(a)", to: "/\\\\2"}}]',
     "routes[0].filters[0].rewrite.to", "refers to group 2; the regex has 1"),
    ("relative to", F + '[{rewrite: {regex: "/(a)", to: "x\\\\1"}}]',
     "routes[0].filters[0].rewrite.to", "expected an absolute path"),
    ("prefix without to", F + "[{rewrite: {prefix: /a}}]",
     "routes[0].filters[0].rewrite.to", "required with prefix or regex"),
    ("prefix and regex", F + '[{rewrite: {prefix: /a, regex: "/b", to: /c}}]',
     "routes[0].filters[0].rewrite.regex", "give prefix or regex, not both"),
    ("to with a query", F + '[{rewrite: {prefix: /a, to: "/b?x=1"}}]',
     "routes[0].filters[0].rewrite.to", "without query"),
    ("bad host", F + '[{rewrite: {host: "a b"}}]',
     "routes[0].filters[0].rewrite.host", "not a host or host:port"),
    ("empty rewrite", F + "[{rewrite: {}}]",
     "routes[0].filters[0].rewrite", "give prefix + to, regex + to, or host"),
    # redirect / respond
    ("two destinations", "upstream: app\n    respond: {body: x}",
     "routes[0].respond", "give exactly one of upstream, split, canary, redirect, respond"),
    ("no destination", "timeout: 1s",
     "routes[0].upstream", "give exactly one of upstream, split, canary, redirect, respond"),
    ("redirect status", "redirect: {status: 200, path: /x}",
     "routes[0].redirect.status", "must be one of 301, 302, 303, 307, 308"),
    ("redirect scheme", "redirect: {scheme: ftp}",
     "routes[0].redirect.scheme", "must be one of http, https"),
    ("redirect host with port", 'redirect: {host: "a.example:80"}',
     "routes[0].redirect.host", "give the port under port:"),
    ("redirect port", "redirect: {port: 70000}",
     "routes[0].redirect.port", "must be 1-65535"),
    ("redirect path", "redirect: {path: x}",
     "routes[0].redirect.path", "expected an absolute path"),
    ("redirect both paths", "redirect: {path: /x, path_prefix: /y}",
     "routes[0].redirect.path_prefix", "give path or path_prefix, not both"),
    ("redirect nothing", "redirect: {}",
     "routes[0].redirect", "give what to change"),
    ("https and http", "redirect: {https_redirect: true, scheme: http}",
     "routes[0].redirect.scheme", "https_redirect sends to https"),
    ("respond status", "respond: {status: 99}",
     "routes[0].respond.status", "must be 200-599"),
    ("respond 204 body", "respond: {status: 204, body: x}",
     "routes[0].respond.body", "a 204 response has no body"),
    ("respond missing file", "respond: {file: /nonexistent/page.html}",
     "routes[0].respond.file", "cannot read /nonexistent/page.html"),
    ("respond body and file", "respond: {body: x, file: /etc/hostname}",
     "routes[0].respond.file", "give body or file, not both"),
    ("respond framing header", 'respond: {body: x, headers: {content-length: "9"}}',
     "routes[0].respond.headers.content-length", "framing or hop-by-hop"),
    ("respond file size", "respond: {file: /etc/hostname, max_file_size: 1}",
     "routes[0].respond.file", "over max_file_size"),
    # cors
    ("star with credentials", F + '[{cors: {allow_origins: ["*"], allow_credentials: true}}]',
     "routes[0].filters[0].cors.allow_origins[0]", "cannot be used with allow_credentials"),
    ("origin with path", F + '[{cors: {allow_origins: ["https://a.example/"]}}]',
     "routes[0].filters[0].cors.allow_origins[0]", "no path or trailing slash"),
    ("null origin", F + '[{cors: {allow_origins: ["null"]}}]',
     "routes[0].filters[0].cors.allow_origins[0]", "sandboxed"),
    ("no origins", F + "[{cors: {}}]",
     "routes[0].filters[0].cors.allow_origins", "give at least one origin"),
    ("origin regex", F + '[{cors: {allow_origin_regex: ["(a)\\\\1"]}}]',
     "routes[0].filters[0].cors.allow_origin_regex[0]", "does not compile as an RE2 pattern"),
    ("lower-case method", F + '[{cors: {allow_origins: ["*"], allow_methods: [get]}}]',
     "routes[0].filters[0].cors.allow_methods[0]", "not a method"),
    ("bad allow header", F + '[{cors: {allow_origins: ["*"], allow_headers: ["a b"]}}]',
     "routes[0].filters[0].cors.allow_headers[0]", "not a header name"),
    ("expose star with credentials",
     F + '[{cors: {allow_origins: ["https://a.example"], allow_credentials: true, '
         'expose_headers: ["*"]}}]',
     "routes[0].filters[0].cors.expose_headers[0]", "taken literally with credentials"),
    ("max_age unit", F + '[{cors: {allow_origins: ["*"], max_age: 600}}]',
     "routes[0].filters[0].cors.max_age", "expected a duration"),
    # ip
    ("host bits", F + "[{ip: {allow: [10.0.0.1/8]}}]",
     "routes[0].filters[0].ip.allow[0]", "has host bits set; the network is 10.0.0.0/8"),
    ("not a network", F + "[{ip: {deny: [nowhere]}}]",
     "routes[0].filters[0].ip.deny[0]", "not an IP network or address"),
    ("empty ip", F + "[{ip: {}}]",
     "routes[0].filters[0].ip", "give allow, deny or both"),
    # compress
    ("unknown algorithm", F + "[{compress: {algorithms: [deflate]}}]",
     "routes[0].filters[0].compress.algorithms[0]", "must be one of zstd, br, gzip"),
    ("algorithm twice", F + "[{compress: {algorithms: [gzip, gzip]}}]",
     "routes[0].filters[0].compress.algorithms[1]", "listed twice"),
    ("no algorithms", F + "[{compress: {algorithms: []}}]",
     "routes[0].filters[0].compress.algorithms", "give at least one"),
    ("gzip level", F + "[{compress: {levels: {gzip: 10}}}]",
     "routes[0].filters[0].compress.levels.gzip", "must be 1-9"),
    ("brotli level", F + "[{compress: {levels: {br: 9}}}]",
     "routes[0].filters[0].compress.levels.br", "must be 0-4"),
    ("zstd level", F + "[{compress: {levels: {zstd: 0}}}]",
     "routes[0].filters[0].compress.levels.zstd", "must be 1-19"),
    ("min_size", F + "[{compress: {min_size: lots}}]",
     "routes[0].filters[0].compress.min_size", "expected a size"),
    ("content type", F + "[{compress: {content_types: [json]}}]",
     "routes[0].filters[0].compress.content_types[0]", "expected type/subtype"),
    # mirror
    ("unknown upstream", F + "[{mirror: {upstream: nope}}]",
     "routes[0].filters[0].mirror.upstream", "no upstream named 'nope'"),
    ("mirror percent", F + "[{mirror: {upstream: app, percent: 101}}]",
     "routes[0].filters[0].mirror.percent", "between 0 and 100"),
    ("mirror timeout", F + "[{mirror: {upstream: app, timeout: 0s}}]",
     "routes[0].filters[0].mirror.timeout", "must be above 0"),
    ("mirror in flight", F + "[{mirror: {upstream: app, max_in_flight: 0}}]",
     "routes[0].filters[0].mirror.max_in_flight", "at least 1"),
    ("mirror marker", F + "[{mirror: {upstream: app, marker: x-request-id}}]",
     "routes[0].filters[0].mirror.marker", "the gateway sets X-Request-Id"),
    ("mirror max_body", F + "[{mirror: {upstream: app, max_body: -1}}]",
     "routes[0].filters[0].mirror.max_body", "cannot be negative"),
    ("mirror without upstream", F + "[{mirror: {}}]",
     "routes[0].filters[0].mirror.upstream", "required key is missing"),
    # fault
    ("abort status", F + "[{fault: {abort: {status: 700}}}]",
     "routes[0].filters[0].fault.abort.status", "must be 200-599"),
    ("abort percent", F + "[{fault: {abort: {percent: -1}}}]",
     "routes[0].filters[0].fault.abort.percent", "between 0 and 100"),
    ("delay duration", F + "[{fault: {delay: {duration: 0ms}}}]",
     "routes[0].filters[0].fault.delay.duration", "must be above 0"),
    ("delay without duration", F + "[{fault: {delay: {percent: 5}}}]",
     "routes[0].filters[0].fault.delay.duration", "required key is missing"),
    ("empty fault", F + "[{fault: {}}]",
     "routes[0].filters[0].fault", "give abort, delay or both"),
    ("empty when", F + "[{fault: {abort: {}, when: {}}}]",
     "routes[0].filters[0].fault.when", "needs at least one of header, cookie, percent_of"),
    ("unknown fault key", F + "[{fault: {abort: {}, chance: 5}}]",
     "routes[0].filters[0].fault.chance", "unknown key"),
    # subset
    ("subset bad key", F + "[{subset: {key: 'header:a b', map: {s: {c: i}}}}]",
     "routes[0].filters[0].subset.key", "header"),
    ("subset route key", F + "[{subset: {key: route, map: {s: {c: i}}}}]",
     "routes[0].filters[0].subset.key", "not a per-request attribute"),
    ("subset empty map", F + "[{subset: {key: 'header:x', map: {}}}]",
     "routes[0].filters[0].subset.map", "at least one"),
    ("subset empty labels", F + "[{subset: {key: 'header:x', map: {s: {}}}}]",
     "routes[0].filters[0].subset.map.s", "must not be empty"),
    ("subset default missing", F + "[{subset: {key: 'header:x', map: {s: {c: i}}, "
     "fallback: default}}]", "routes[0].filters[0].subset.default", "needs default labels"),
    ("subset fallback", F + "[{subset: {key: 'header:x', map: {s: {c: i}}, fallback: all}}]",
     "routes[0].filters[0].subset.fallback", "all"),
]


def problems_of(route: str) -> list[tuple[str, str]]:
    text = BASE.replace("ROUTE", route)
    with pytest.raises(ConfigError) as caught:
        load_text(text, "edgeward.yaml")
    return [(p.path, p.reason) for p in caught.value.problems]


@pytest.mark.parametrize(("what", "route", "path", "reason"), CASES, ids=[c[0] for c in CASES])
def test_bad_value_is_refused_with_its_key_path(what: str, route: str, path: str,
                                                reason: str) -> None:
    found = problems_of(route)
    print(f"{what}: edgeward.yaml: {found[0][0]}: {found[0][1]}")
    assert any(p == path and reason in r for p, r in found), found


def test_a_good_config_of_every_kind_loads() -> None:
    route = """upstream: app
    filters:
      - request_headers: {set: {x-a: "${client_ip}"}, add: {x-b: "$$5"}, remove: [x-c]}
      - response_headers: {set: {x-d: "1"}}
      - strip_prefix: /api
      - rewrite: {regex: "/u/(\\\\d+)", to: "/users/\\\\1", host: "a.example:8080"}
      - cors: {allow_origins: ["https://a.example", "https://*.b.example"], max_age: 1h}
      - ip: {allow: ["10.0.0.0/8", "::1"], deny: [10.1.0.0/16]}
      - compress: {levels: {gzip: 6, br: 4, zstd: 19}, content_types: ["text/*"]}
      - mirror: {upstream: app, percent: 12.5}
      - fault: {abort: {status: 503, percent: 1}, delay: {duration: 1s},
                when: {header: {x-chaos: "1"}}}"""
    cfg = load_text(BASE.replace("ROUTE", route), "edgeward.yaml")
    assert len(cfg.routes[0].filters) == 9
