"""Issue 18, low: a config of nested YAML aliases ("billion laughs") is refused at once.

Before: a few hundred bytes of nested aliases (10^8 values once expanded) held the worker's
event loop for over 12 s while the refusal message spelled every value out (hundreds of MB).
Now the expanded size is counted right after composing, before any value is built, and the
config is refused with one precise line; parsing runs off the event loop.
"""

from __future__ import annotations

from tests.observability.obskit import AdminGateway, get
from tests.support.origin import Origin


def laughs(levels: int) -> str:
    """A route whose match.headers nest `levels` lists of ten aliases of the level below."""
    lines = ["upstreams: {o: {targets: ['127.0.0.1:1']}}", "routes:", "  - upstream: o",
             "    match:", "      headers:", "        h0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"        h{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_nested_aliases_are_refused_with_one_line_and_the_gateway_keeps_serving() -> None:
    with Origin() as origin, AdminGateway(f"""
listen: "{{listen}}"
admin: "{{admin}}"
upstreams: {{o: {{targets: ["{origin.address}"]}}}}
routes: [{{name: all, upstream: o}}]
""") as gw:
        text = laughs(8)
        assert len(text) < 1000
        refused = gw.admin("POST", "/config", text)  # gives up after 10 s
        assert refused.status == 400
        assert refused.json()["problems"] == [
            "POST /config: (top): YAML refused: the document expands to more than 500000 "
            "nodes once its aliases are expanded"]
        assert len(refused.body) < 1000
        assert get(gw.port, "/after").status == 200
