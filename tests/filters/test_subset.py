"""The subset filter's choice per request (sans-I/O): value -> selector chain by fallback."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeward.filters.api import Reply
from edgeward.filters.builtin.subset import SubsetConfig, _make
from edgeward.filters.config import BuildContext
from edgeward.http.fields import Headers
from edgeward.http.message import RequestHead

MAP = {"sensor": {"class": "iot"}, "gold": {"sla": "gold", "class": "x"}}


def request(value: str | None) -> RequestHead:
    fields = [(b"x-device-type", value.encode())] if value is not None else []
    return RequestHead("GET", b"/", "/", "h", b"h", Headers(fields), 0, "10.0.0.1")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.sampled_from(["sensor", "gold", "toaster", ""])),
       st.sampled_from(["any", "default", "none"]))
def test_the_chain_follows_the_map_and_the_fallback(value: str | None, fallback: str) -> None:
    f = _make(SubsetConfig(key="header:x-device-type", map=MAP, default={"class": "general"},
                           fallback=fallback), BuildContext())  # type: ignore[arg-type]
    req = request(value)
    result = f.on_request(req)
    tail = {"any": (None,), "none": (), "default": ((("class", "general"),),)}[fallback]
    if value in MAP:
        assert result is None
        assert req.subset == (tuple(sorted(MAP[value].items())),) + tail
    elif fallback == "none":
        assert isinstance(result, Reply) and result.status == 503
        assert req.subset is None
    else:
        assert result is None and req.subset == tail
