"""The OpenAPI 3.1 description of the admin API, served at GET /openapi.json.

Kept as a literal so a reader sees the whole contract in one place; tests compare its paths and
methods with the server's routing table so the two never drift.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}
_UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}


def _json(description: str, schema: dict[str, Any] | None = None,
          media: str = "application/json") -> dict[str, Any]:
    return {
        "description": description,
        "content": {media: {"schema": schema or {"type": "object"}}},
    }


_PROBLEM = "application/problem+json"


_LIST = {"type": "array", "items": {"type": "object"}}
_ROUTE_PARAM = {"name": "route", "in": "query", "required": False,
                "schema": {"type": "string"}, "description": "the route of the canary"}


def _canary_action(action: str) -> dict[str, Any]:
    return {
        "summary": f"{action.capitalize()} a route's canary (?route=NAME or JSON "
                   '{"route": NAME})',
        "operationId": f"canary{action.capitalize()}",
        "security": [{"bearer": []}],
        "parameters": [_ROUTE_PARAM],
        "responses": {
            "200": _json("the decision and the canary"),
            "400": _ERROR, "401": _UNAUTHORIZED, "403": _ERROR, "404": _ERROR,
            "409": _ERROR, "415": _ERROR,
        },
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "edgeward admin API",
        "version": "1",
        "description": "Health, metrics, live configuration and state of an edgeward gateway. "
                       "Every POST needs `Authorization: Bearer <token>` when a token is set.",
    },
    "paths": {
        "/healthz": {"get": {
            "summary": "Liveness: the process answers",
            "operationId": "healthz",
            "responses": {"200": _json("alive", {
                "type": "object", "properties": {"status": {"const": "ok"}}})},
        }},
        "/ready": {"get": {
            "summary": "Readiness: the gateway accepts traffic",
            "operationId": "ready",
            "responses": {
                "200": _json("ready", {
                    "type": "object", "properties": {"status": {"const": "ready"}}}),
                "503": _ERROR,
            },
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics",
            "operationId": "metrics",
            "responses": {"200": {
                "description": "text exposition format 0.0.4, or OpenMetrics 1.0 when the "
                               "Accept header asks for it first",
                "content": {
                    "text/plain; version=0.0.4": {"schema": {"type": "string"}},
                    "application/openmetrics-text; version=1.0.0": {
                        "schema": {"type": "string"}},
                },
            }},
        }},
        "/config": {
            "get": {
                "summary": "The running configuration, secrets redacted",
                "operationId": "getConfig",
                "responses": {"200": _json("configuration")},
            },
            "post": {
                "summary": "Validate and apply a new configuration (YAML body)",
                "operationId": "applyConfig",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {
                    "application/yaml": {"schema": {"type": "string"}}}},
                "responses": {
                    "200": _json("applied", {
                        "type": "object", "properties": {"applied": {"const": True}}}),
                    "400": _json("refused; the running configuration is unchanged", {
                        "allOf": [{"$ref": "#/components/schemas/Error"}, {
                            "type": "object",
                            "required": ["problems"],
                            "properties": {
                                "code": {"const": "invalid_config"},
                                "problems": {"type": "array", "items": {"type": "string"}},
                            },
                        }],
                    }, _PROBLEM),
                    "401": _UNAUTHORIZED,
                    "403": _ERROR,
                    "413": _ERROR,
                    "415": _ERROR,
                },
            },
        },
        "/routes": {"get": {
            "summary": "Routes of the running configuration, with each route's filter chain",
            "operationId": "routes",
            "responses": {"200": _json("routes", {
                "type": "array", "items": {"$ref": "#/components/schemas/Route"}})},
        }},
        "/upstreams": {"get": {
            "summary": "Upstreams and their endpoints: health, ejection, breaker, in-flight, EWMA",
            "operationId": "upstreams",
            "responses": {"200": _json("upstreams", _LIST)},
        }},
        "/certificates": {"get": {
            "summary": "Certificates the TLS listeners serve: each name, when it expires, "
                       "seconds left",
            "operationId": "certificates",
            "responses": {"200": _json("certificates", {
                "type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "expires": {"type": "number", "description": "Unix time"},
                    "seconds_left": {"type": "number"}}}})},
        }},
        "/ratelimits": {"get": {
            "summary": "Rate limits and their current state",
            "operationId": "ratelimits",
            "responses": {"200": _json("rate limits", _LIST)},
        }},
        "/reloads": {"get": {
            "summary": "Recent configuration reloads, newest first",
            "operationId": "reloads",
            "responses": {"200": _json("reloads", _LIST)},
        }},
        "/drain": {"post": {
            "summary": "Start a graceful drain (readiness turns 503, in-flight requests finish)",
            "operationId": "drain",
            "security": [{"bearer": []}],
            "responses": {
                "202": _json("draining", {
                    "type": "object", "properties": {"draining": {"const": True}}}),
                "401": _UNAUTHORIZED,
                "403": _ERROR,
                "415": _ERROR,
            },
        }},
        "/canaries": {"get": {
            "summary": "Canaries: phase, weight, window counts and recent decisions with their "
                       "figures; ?route=NAME for one",
            "operationId": "canaries",
            "parameters": [_ROUTE_PARAM],
            "responses": {"200": _json("canaries (a list, or one with ?route=)"),
                          "404": _ERROR},
        }},
        **{f"/canaries/{action}": {"post": _canary_action(action)}
           for action in ("start", "promote", "pause", "abort")},
        "/cache": {"get": {
            "summary": "The worker's response cache: entries, bytes, purges, fleet position",
            "operationId": "cache",
            "responses": {"200": _json("cache")},
        }},
        "/cache/purge": {"post": {
            "summary": "Purge cached responses by key, prefix or tag (or all), here, "
                       "in the shared tier with cache.shared and, with cache.fleet, on "
                       "every gateway",
            "operationId": "cachePurge",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "properties": {
                    "keys": {"type": "array", "items": {"type": "string"}},
                    "prefixes": {"type": "array", "items": {"type": "string"}},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "all": {"type": "boolean"}}}}}},
            "responses": {
                "200": _json("purged", {"type": "object", "properties": {
                    "purged": {"type": "integer"},
                    "id": {"type": ["string", "null"],
                           "description": "the purge stream entry"},
                    "shared_purged": {"type": "integer",
                                      "description": "entries removed from the shared "
                                                     "tier (cache.shared)"}}}),
                "400": _ERROR,
                "401": _UNAUTHORIZED,
                "403": _ERROR,
                "415": _ERROR,
                "503": _ERROR,
            },
        }},
        "/openapi.json": {"get": {
            "summary": "This document",
            "operationId": "openapi",
            "responses": {"200": _json("OpenAPI 3.1 document")},
        }},
        "/openapi/devices.json": {"get": {
            "summary": "The OpenAPI 3.1 document of the device API that routes with "
                       "`devices:` serve on the data plane (docs/devices.md)",
            "operationId": "devicesOpenapi",
            "responses": {"200": _json("OpenAPI 3.1 document")},
        }},
        "/api/series": {"get": {
            "summary": "Dashboard time series: per step rate, error rate, p50/p99",
            "operationId": "series",
            "responses": {"200": _json("series", {
                "type": "object",
                "properties": {
                    "step": {"type": "number"},
                    "horizon": {"type": "number"},
                    "t": {"type": "array", "items": {"type": "number"}},
                    "routes": {"type": "object",
                               "additionalProperties": {"$ref": "#/components/schemas/Line"}},
                    "upstreams": {"type": "object",
                                  "additionalProperties": {"$ref": "#/components/schemas/Line"}},
                },
            })},
        }},
        "/": {"get": {
            "summary": "Live dashboard",
            "operationId": "dashboard",
            "responses": {"200": {
                "description": "HTML page",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }},
        }},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "description": "An RFC 9457 problem document with the gateway's stable code",
                "type": "object",
                "required": ["type", "title", "status", "detail", "code", "request_id"],
                "properties": {
                    "type": {"type": "string", "format": "uri"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                    "request_id": {"type": "string"},
                },
            },
            "Route": {
                "type": "object",
                "required": ["name", "match", "filters"],
                "properties": {
                    "name": {"type": "string"},
                    "match": {"type": "object"},
                    "upstream": {"type": ["string", "null"]},
                    "split": {"type": ["array", "null"], "items": {"type": "object"}},
                    "timeout": {"type": ["number", "null"]},
                    "rate_limit": {"type": ["object", "null"]},
                    "max_concurrent": {"type": ["integer", "null"]},
                    "retries": {"type": ["object", "null"]},
                    "redirect": {"type": ["object", "null"]},
                    "respond": {"type": ["object", "null"],
                                "description": "the reply, its body as body_bytes"},
                    "devices": {"type": ["object", "null"],
                                "description": "the route serves the device API"},
                    "filters": {
                        "type": "array",
                        "description": "the chain in the order it runs: governance built-ins "
                                       "from the route's keys, its filters: list, and the "
                                       "redirect or respond that ends it",
                        "items": {"$ref": "#/components/schemas/RouteFilter"},
                    },
                },
                "additionalProperties": False,
            },
            "RouteFilter": {
                "type": "object",
                "required": ["name", "kind", "order"],
                "properties": {
                    "name": {"type": "string",
                             "description": "its name under filters:, or its kind"},
                    "kind": {"type": "string",
                             "description": "built-in kind (cors, ip, ...), a route key "
                                            "(rate_limit, ...), or python:module:Class"},
                    "order": {"type": "integer", "description": "its place (ORDER_*)"},
                },
                "additionalProperties": False,
            },
            "Line": {
                "type": "object",
                "properties": {
                    name: {"type": "array", "items": {"type": ["number", "null"]}}
                    for name in ("rps", "eps", "err", "p50", "p99")
                },
            },
        },
        "responses": {
            "Error": _json("error", {"$ref": "#/components/schemas/Error"}, _PROBLEM),
            "Unauthorized": _json("missing or wrong bearer token",
                                  {"$ref": "#/components/schemas/Error"}, _PROBLEM),
        },
    },
}
