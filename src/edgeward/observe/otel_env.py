"""The tracing settings in force: YAML `tracing:` over the standard OTEL_* variables over the
defaults.

The OpenTelemetry SDK environment variables (specification "Environment Variable
Specification" and "OTLP Exporter Configuration") are read once at start:

    OTEL_SDK_DISABLED                       true: no spans exported (ids still propagated)
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT      the traces URL, used as it is
    OTEL_EXPORTER_OTLP_ENDPOINT             the base URL, /v1/traces appended
    OTEL_EXPORTER_OTLP_(TRACES_)HEADERS     k=v,k2=v2 (values percent-decoded)
    OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION gzip | none
    OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT     milliseconds
    OTEL_SERVICE_NAME                       service.name
    OTEL_RESOURCE_ATTRIBUTES                k=v,k2=v2 resource attributes
    OTEL_TRACES_SAMPLER (+ _ARG)            always_on, always_off, traceidratio,
                                            parentbased_always_on (default),
                                            parentbased_always_off, parentbased_traceidratio

The rule: a key set in `tracing:` wins over its variable; a key left out takes the variable;
the signal-specific variable (`_TRACES_`) wins over the general one, as the specification
says. Resource attributes merge per key (config over variable), `service.name` over both. An
invalid variable is reported and ignored (the specification: "log a warning and use the
default"), never a refused start. With OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT set and no
`tracing:` section, tracing is on with those variables and the defaults.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeward.observe.otlp import DEFAULT_EXPORT_TIMEOUT, Compression, OtlpHttpExporter
from edgeward.observe.tracing import (
    DEFAULT_SAMPLE_RATIO,
    DEFAULT_SERVICE_NAME,
    Sampler,
    TracingConfig,
)

_SAMPLERS: dict[str, tuple[float | None, bool]] = {
    # name -> (ratio, None: from _ARG; parent based)
    "always_on": (1.0, False),
    "always_off": (0.0, False),
    "traceidratio": (None, False),
    "parentbased_always_on": (1.0, True),
    "parentbased_always_off": (0.0, True),
    "parentbased_traceidratio": (None, True),
}


@dataclass(frozen=True, kw_only=True)
class TracingSettings:
    """What the tracer and its exporter run with, and what was wrong in the environment."""

    sample_ratio: float
    parent_based: bool
    endpoint: str | None
    exact_path: bool  # the endpoint is the whole traces URL (the _TRACES_ variable)
    service_name: str
    headers: dict[str, str]
    compression: Compression
    timeout: float
    resource: dict[str, str]
    batch_size: int
    flush_interval: float
    max_queue: int
    warnings: list[str] = field(default_factory=list)

    def sampler(self) -> Sampler:
        return Sampler(self.sample_ratio, parent_based=self.parent_based)

    def exporter(self) -> OtlpHttpExporter | None:
        """A (not yet started) exporter, or None when no endpoint is set anywhere."""
        if self.endpoint is None:
            return None
        return OtlpHttpExporter(
            self.endpoint, self.service_name, batch_size=self.batch_size,
            flush_interval=self.flush_interval, max_queue=self.max_queue,
            timeout=self.timeout, headers=self.headers, compression=self.compression,
            resource=self.resource, exact_path=self.exact_path)


def pairs(text: str) -> dict[str, str]:
    """`k=v,k2=v2` (W3C Baggage-like, as OTEL_*_HEADERS and OTEL_RESOURCE_ATTRIBUTES are),
    values percent-decoded; ValueError names a member without `=` or with an empty key."""
    out: dict[str, str] = {}
    for member in text.split(","):
        if not member.strip():
            continue
        key, eq, value = member.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"{member.strip()!r} is not key=value")
        out[key] = urllib.parse.unquote(value.strip())
    return out


class _Env:
    """The OTEL_* variables, with what was wrong in them collected."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.warnings: list[str] = []

    def get(self, *names: str) -> tuple[str, str] | None:
        """The first of `names` that is set and not empty: (name, value)."""
        for name in names:
            value = self.environ.get(name, "").strip()
            if value:
                return name, value
        return None

    def otlp(self, what: str) -> tuple[str, str] | None:
        return self.get(f"OTEL_EXPORTER_OTLP_TRACES_{what}", f"OTEL_EXPORTER_OTLP_{what}")

    def warn(self, name: str, value: str, why: str) -> None:
        self.warnings.append(f"{name}={value!r} ignored: {why}")


def enabled_by_env(environ: Mapping[str, str]) -> bool:
    """Whether the environment alone turns tracing on (an OTLP endpoint is set)."""
    return _Env(environ).otlp("ENDPOINT") is not None


def resolve(cfg: TracingConfig | None, environ: Mapping[str, str]) -> TracingSettings:
    """The settings in force for `cfg` (None: no `tracing:` section) under `environ`."""
    cfg = cfg or TracingConfig()
    env = _Env(environ)
    ratio, parent_based = _sampler(env)
    endpoint, exact = _endpoint(cfg, env)
    resource = _resource(env)
    resource.update(cfg.resource_attributes or {})
    service = (cfg.service_name or _value(env.get("OTEL_SERVICE_NAME"))
               or resource.pop("service.name", None) or DEFAULT_SERVICE_NAME)
    resource.pop("service.name", None)
    return TracingSettings(
        sample_ratio=cfg.sample_ratio if cfg.sample_ratio is not None else ratio,
        parent_based=cfg.parent_based if cfg.parent_based is not None else parent_based,
        endpoint=endpoint, exact_path=exact, service_name=service,
        headers=cfg.headers if cfg.headers is not None else _headers(env),
        compression=cfg.compression or _compression(env),
        timeout=cfg.timeout if cfg.timeout is not None else _timeout(env),
        resource=resource, batch_size=cfg.batch_size, flush_interval=cfg.flush_interval,
        max_queue=cfg.max_queue, warnings=env.warnings)


def _value(found: tuple[str, str] | None) -> str | None:
    return found[1] if found is not None else None


def _endpoint(cfg: TracingConfig, env: _Env) -> tuple[str | None, bool]:
    if env.get("OTEL_SDK_DISABLED") is not None and env.environ[
            "OTEL_SDK_DISABLED"].strip().lower() == "true":
        return None, False
    if cfg.otlp_endpoint is not None:
        return cfg.otlp_endpoint, False
    found = env.otlp("ENDPOINT")
    if found is None:
        return None, False
    name, value = found
    url = urllib.parse.urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname:
        env.warn(name, value, "not an http(s) URL")
        return None, False
    protocol = env.otlp("PROTOCOL")
    if protocol is not None and protocol[1] != "http/json":
        env.warn(*protocol, "edgeward exports OTLP/HTTP with JSON (http/json)")
    return value, name == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


def _sampler(env: _Env) -> tuple[float, bool]:
    found = env.get("OTEL_TRACES_SAMPLER")
    if found is None:
        return DEFAULT_SAMPLE_RATIO, True
    name, value = found
    known = _SAMPLERS.get(value.lower())
    if known is None:
        env.warn(name, value, f"edgeward knows {', '.join(_SAMPLERS)}")
        return DEFAULT_SAMPLE_RATIO, True
    ratio, parent_based = known
    if ratio is None:
        ratio = 1.0  # the specification's default for a ratio sampler without _ARG
        arg = env.get("OTEL_TRACES_SAMPLER_ARG")
        if arg is not None:
            try:
                ratio = float(arg[1])
                if not 0.0 <= ratio <= 1.0:
                    raise ValueError
            except ValueError:
                env.warn(*arg, "not a ratio between 0 and 1")
                ratio = 1.0
    return ratio, parent_based


def _headers(env: _Env) -> dict[str, str]:
    found = env.otlp("HEADERS")
    if found is None:
        return {}
    try:
        return pairs(found[1])
    except ValueError:
        # The value holds credentials: it is not repeated in the log.
        env.warnings.append(f"{found[0]} ignored: every member must be key=value")
        return {}


def _resource(env: _Env) -> dict[str, str]:
    found = env.get("OTEL_RESOURCE_ATTRIBUTES")
    if found is None:
        return {}
    try:
        return pairs(found[1])
    except ValueError as exc:
        env.warn(*found, str(exc))
        return {}


def _compression(env: _Env) -> Compression:
    found = env.otlp("COMPRESSION")
    if found is None:
        return "none"
    value = found[1].lower()
    if value == "gzip":
        return "gzip"
    if value != "none":
        env.warn(*found, "gzip or none")
    return "none"


def _timeout(env: _Env) -> float:
    found = env.otlp("TIMEOUT")
    if found is None:
        return DEFAULT_EXPORT_TIMEOUT
    try:
        ms = float(found[1])
        if ms <= 0:
            raise ValueError
    except ValueError:
        env.warn(*found, "milliseconds above 0")
        return DEFAULT_EXPORT_TIMEOUT
    return ms / 1000.0
