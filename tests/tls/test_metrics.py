from __future__ import annotations

from edgeward.observe.metrics import Registry
from edgeward.tls.metrics import EXPIRY_METRIC, expiry_gauge, export_expiry


def test_expiry_is_rendered_per_name_soonest_first() -> None:
    registry = Registry()
    gauge = expiry_gauge(registry)
    export_expiry(gauge, {"a.test": 100.0, "*.w.test": 50.0}, {"a.test": 40.0})
    text = registry.render()
    assert f'{EXPIRY_METRIC}{{name="a.test"}} 40' in text
    assert f'{EXPIRY_METRIC}{{name="*.w.test"}} 50' in text
    export_expiry(gauge, {"b.test": -5.0})                  # a name gone is dropped
    text = registry.render()
    assert "a.test" not in text and f'{EXPIRY_METRIC}{{name="b.test"}} -5' in text
