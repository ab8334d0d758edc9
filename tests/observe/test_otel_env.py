"""Tracing settings from YAML `tracing:` over the OTEL_* variables over the defaults
(`edgeward.observe.otel_env`)."""

from __future__ import annotations

import pytest

from edgeward.observe.otel_env import enabled_by_env, pairs, resolve
from edgeward.observe.tracing import TracingConfig
from edgeward.structs import load_struct

ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
    "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=abc%3D%3D,tenant=t1",
    "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
    "OTEL_SERVICE_NAME": "edge-eu",
    "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=ignored,k8s.pod=p1",
    "OTEL_TRACES_SAMPLER": "traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.25",
}


def test_the_environment_fills_every_key_the_config_leaves_out() -> None:
    s = resolve(None, ENV)
    assert (s.endpoint, s.exact_path) == ("http://collector:4318", False)
    assert s.headers == {"x-api-key": "abc==", "tenant": "t1"}
    assert (s.compression, s.timeout, s.service_name) == ("gzip", 2.5, "edge-eu")
    assert s.resource == {"deployment.environment": "prod", "k8s.pod": "p1"}
    assert (s.sample_ratio, s.parent_based) == (0.25, False)
    assert s.warnings == []
    exporter = s.exporter()
    assert exporter is not None and exporter.path == "/v1/traces" and exporter.host == "collector"
    assert enabled_by_env(ENV) and not enabled_by_env({})


def test_a_key_set_in_the_config_wins_over_its_variable() -> None:
    cfg = load_struct(TracingConfig, {
        "otlp_endpoint": "http://mine:4318", "headers": {"x-api-key": "cfg"},
        "compression": "none", "timeout": "1s", "service_name": "cfg-name",
        "sample_ratio": 0.5, "resource_attributes": {"k8s.pod": "cfg-pod"}}, path="tracing")
    s = resolve(cfg, ENV)
    assert (s.endpoint, s.headers, s.compression, s.timeout, s.service_name) == (
        "http://mine:4318", {"x-api-key": "cfg"}, "none", 1.0, "cfg-name")
    # sample_ratio set, parent_based not: the sampler variable still decides the latter.
    assert (s.sample_ratio, s.parent_based) == (0.5, False)
    assert s.resource == {"deployment.environment": "prod", "k8s.pod": "cfg-pod"}


def test_signal_specific_variables_win_and_their_endpoint_is_used_as_is() -> None:
    env = {**ENV, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/x/traces",
           "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a=1",
           "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "100"}
    s = resolve(TracingConfig(), env)
    assert (s.endpoint, s.exact_path, s.headers, s.timeout) == (
        "http://traces:4318/x/traces", True, {"a": "1"}, 0.1)
    exporter = s.exporter()
    assert exporter is not None and exporter.path == "/x/traces"


@pytest.mark.parametrize(("sampler", "arg", "want"), [
    ("always_on", None, (1.0, False)), ("always_off", None, (0.0, False)),
    ("parentbased_always_on", None, (1.0, True)),
    ("parentbased_always_off", None, (0.0, True)),
    ("parentbased_traceidratio", "0.1", (0.1, True)),
    ("traceidratio", None, (1.0, False)),        # the specification's default argument
    ("PARENTBASED_ALWAYS_ON", None, (1.0, True)),
])
def test_samplers_of_the_specification(sampler: str, arg: str | None,
                                       want: tuple[float, bool]) -> None:
    env = {"OTEL_TRACES_SAMPLER": sampler}
    if arg is not None:
        env["OTEL_TRACES_SAMPLER_ARG"] = arg
    s = resolve(None, env)
    assert (s.sample_ratio, s.parent_based) == want and not s.warnings


def test_invalid_variables_are_reported_and_ignored_never_fatal() -> None:
    s = resolve(None, {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "secret-without-equals",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "brotli",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "-5",
        "OTEL_TRACES_SAMPLER": "jaeger_remote",
        "OTEL_RESOURCE_ATTRIBUTES": "=x",
    })
    assert s.endpoint is None and s.headers == {} and s.compression == "none"
    assert (s.timeout, s.sample_ratio, s.parent_based, s.resource) == (10.0, 0.01, True, {})
    text = "\n".join(s.warnings)
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
                 "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TIMEOUT",
                 "OTEL_TRACES_SAMPLER", "OTEL_RESOURCE_ATTRIBUTES"):
        assert name in text
    assert "secret" not in text  # a header value may be a credential
    bad_arg = resolve(None, {"OTEL_TRACES_SAMPLER": "traceidratio",
                             "OTEL_TRACES_SAMPLER_ARG": "2"})
    assert bad_arg.sample_ratio == 1.0 and "OTEL_TRACES_SAMPLER_ARG" in bad_arg.warnings[0]


def test_sdk_disabled_exports_nothing_and_other_protocols_are_named() -> None:
    assert resolve(None, {**ENV, "OTEL_SDK_DISABLED": "true"}).endpoint is None
    s = resolve(None, {**ENV, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert s.endpoint == "http://collector:4318" and "http/json" in s.warnings[0]


def test_pairs_decode_percent_escapes_and_refuse_members_without_a_key() -> None:
    assert pairs(" a = 1 , b=%20two ,, ") == {"a": "1", "b": " two"}
    with pytest.raises(ValueError, match="'novalue' is not key=value"):
        pairs("a=1,novalue")
