"""`edgeward validate` accepts each governance form exactly as users write it (as the README,
DESIGN.md and the governance issue spell them), and refuses a broken one with a precise line.

test_config_forms.py proves the behaviour of these forms over sockets; this file proves the
forms themselves are accepted verbatim, with no quoting a user would not think of.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.gateway import edgeward_command

HEAD = """\
listen: 127.0.0.1:8080
upstreams:
  pair: {targets: [127.0.0.1:9001, 127.0.0.1:9002]}
  canary: {targets: [127.0.0.1:9003]}
"""

FORMS = {
    "ring_hash": """
upstreams:
  sticky: {targets: [127.0.0.1:9001, 127.0.0.1:9002], balance: ring_hash, hash_on: "header:x-user"}
routes:
  - {match: {path_prefix: /}, upstream: sticky}
""",
    "circuit_breaker": """
upstreams:
  broken: {targets: [127.0.0.1:9004], circuit_breaker: {failure_rate: 0.5, min_requests: 10,
           window: 10s, open_for: 30s}}
routes:
  - {match: {path_prefix: /}, upstream: broken}
""",
    "rate_limit": """
routes:
  - {name: limited, match: {path_prefix: /limited}, upstream: pair,
     rate_limit: {rate: 5/s, burst: 5, key: client_ip}}
""",
    "gray_header": """
routes:
  - match: {path_prefix: /}
    split: [{upstream: canary, when: {header: {x-deployment-id: v2-canary}}}, {upstream: pair}]
""",
    "percent_of": """
routes:
  - match: {path_prefix: /}
    split: [{upstream: canary, when: {percent_of: {key: "header:x-user-id", percent: 10}}},
            {upstream: pair}]
""",
    "outlier": """
upstreams:
  o: {targets: [127.0.0.1:9001, 127.0.0.1:9002],
      outlier: {consecutive_5xx: 3, base_ejection_time: 30s}}
routes:
  - {match: {path_prefix: /}, upstream: o}
""",
    "health": """
upstreams:
  h: {targets: [127.0.0.1:9001], health: {path: /healthz, interval: 1s}}
routes:
  - {match: {path_prefix: /}, upstream: h}
""",
    "max_concurrent": """
routes:
  - {match: {path_prefix: /}, upstream: pair, max_concurrent: 2}
""",
    "leaky_bucket": """
routes:
  - {match: {path_prefix: /}, upstream: pair,
     rate_limit: {rate: 10/s, burst: 5, algorithm: leaky_bucket}}
""",
}


def validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "edgeward.yaml"
    path.write_text(text)
    return subprocess.run(edgeward_command() + ["validate", str(path)], capture_output=True,
                          text=True, timeout=30)


def merged(body: str) -> str:
    """HEAD plus a form; a form's own `upstreams:` block adds to HEAD's."""
    if body.lstrip().startswith("upstreams:"):
        ups, _, rest = body.lstrip()[len("upstreams:"):].partition("routes:")
        return HEAD + ups.rstrip("\n").lstrip("\n") + "\nroutes:" + rest
    return HEAD + body.lstrip("\n")


@pytest.mark.parametrize("form", sorted(FORMS))
def test_form_is_accepted_verbatim(tmp_path: Path, form: str) -> None:
    done = validate(tmp_path, merged(FORMS[form]))
    assert done.returncode == 0, done.stdout + done.stderr


def test_broken_form_is_refused_with_its_key_path(tmp_path: Path) -> None:
    text = merged("""
routes:
  - {match: {path_prefix: /}, upstream: pair, rate_limit: {rate: 5/parsec}}
""")
    done = validate(tmp_path, text)
    assert done.returncode == 1
    assert "routes[0].rate_limit.rate" in done.stdout + done.stderr


RETRIES_README = """
routes:
  - {match: {path_prefix: /}, upstream: pair,
     retries: {attempts: 3, on: [connect_failure, reset, 503]}}
"""


def test_retries_on_unquoted_key_as_in_readme(tmp_path: Path) -> None:
    done = validate(tmp_path, merged(RETRIES_README.replace("503", '"503"')))
    assert done.returncode == 0, done.stdout + done.stderr


def test_retries_on_integer_status(tmp_path: Path) -> None:
    done = validate(tmp_path, merged(RETRIES_README.replace(" on:", ' "on":')))
    assert done.returncode == 0, done.stdout + done.stderr


def test_retries_on_quoted_key_and_status_is_accepted(tmp_path: Path) -> None:
    """The spelling that works today (used by test_config_forms.py)."""
    text = RETRIES_README.replace(" on:", ' "on":').replace("503", '"503"')
    done = validate(tmp_path, merged(text))
    assert done.returncode == 0, done.stdout + done.stderr
