"""The OpenAPI 3.1 description of the device API (the data-plane routes with `devices:`),
served by the admin API at GET /openapi/devices.json. Paths are relative to the route's
prefix (a server URL per deployment). Kept as a literal, like the admin API's."""

from __future__ import annotations

from typing import Any

_PROBLEM = {"$ref": "#/components/responses/Error"}


def _json(description: str, ref: str, headers: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}
    if headers:
        out["headers"] = {"ETag": {"description": 'the shadow version, "N"',
                                   "schema": {"type": "string"}}}
    return out


_DEVICE = {"name": "device", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9:_.-]{1,128}$"}}
_NAME = {"name": "name", "in": "path", "required": True,
         "description": "a named shadow (`delta` is reserved); omit the segment for the "
                        "classic shadow",
         "schema": {"type": "string", "pattern": "^[A-Za-z0-9:_.-]{1,128}$"}}
_IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
             "description": "the expected version; another one is 409 version_conflict",
             "schema": {"type": "string"}}
_ERRORS = {"400": _PROBLEM, "401": _PROBLEM, "403": _PROBLEM, "429": _PROBLEM,
           "503": _PROBLEM}


def _shadow_ops(params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "parameters": params,
        "get": {"summary": "The shadow document", "operationId": "getShadow",
                "responses": {"200": _json("the shadow", "Shadow", True), "404": _PROBLEM,
                              **_ERRORS}},
        "patch": {"summary": "Update with JSON merge patches (RFC 7386); POST is the same",
                  "operationId": "updateShadow", "parameters": [_IF_MATCH],
                  "requestBody": {"required": True, "content": {"application/json": {
                      "schema": {"$ref": "#/components/schemas/Update"}}}},
                  "responses": {"200": _json("applied, duplicate or stale", "Accepted", True),
                                "409": _json("version conflict", "Conflict"),
                                "413": _PROBLEM, **_ERRORS}},
        "delete": {"summary": "Clear desired and reported (the version goes on)",
                   "operationId": "deleteShadow", "parameters": [_IF_MATCH],
                   "responses": {"200": _json("cleared", "Accepted", True),
                                 "409": _json("version conflict", "Conflict"), **_ERRORS}},
    }


def _delta_ops(params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"parameters": params, "get": {
        "summary": "The delta; with version and wait, a long poll until the shadow passes "
                   "that version (at most the route's devices.max_wait); with Accept: "
                   "text/event-stream, server-sent events: one `delta` event per change, its "
                   "id the version; Last-Event-ID resumes",
        "operationId": "getDelta",
        "parameters": [
            {"name": "version", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {"name": "wait", "in": "query", "description": "seconds",
             "schema": {"type": "number", "minimum": 0}},
            {"name": "Last-Event-ID", "in": "header", "description": "SSE: resume after "
             "this version", "schema": {"type": "string"}}],
        "responses": {"200": _delta_answers(), "429": _PROBLEM, **_ERRORS}}}


def _delta_answers() -> dict[str, Any]:
    answer = _json("the delta", "Delta", True)
    answer["content"]["text/event-stream"] = {"schema": {
        "type": "string", "description": "events `delta` (id: version, data: a Delta)"}}
    return answer


_OBJ = {"type": "object"}

DEVICES_OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "edgeward device API", "version": "1",
             "description": "Device shadows, telemetry, commands and sessions "
                            "(docs/devices.md)."},
    "paths": {
        "/devices/{device}/shadow": _shadow_ops([_DEVICE]),
        "/devices/{device}/shadow/{name}": _shadow_ops([_DEVICE, _NAME]),
        "/devices/{device}/shadow/delta": _delta_ops([_DEVICE]),
        "/devices/{device}/shadow/{name}/delta": _delta_ops([_DEVICE, _NAME]),
        "/devices/{device}/telemetry": {"parameters": [_DEVICE], "post": {
            "summary": "Append a message to the device's telemetry stream, once per "
                       "Idempotency-Key",
            "operationId": "postTelemetry",
            "parameters": [{"name": "Idempotency-Key", "in": "header",
                            "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"*/*": {"schema": {}}}},
            "responses": {"202": _json("stored", "Stored"),
                          "200": _json("a resend: stored before", "Stored"),
                          "413": _PROBLEM, **_ERRORS}}},
        "/devices/{device}/commands": {
            "parameters": [_DEVICE],
            "post": {"summary": "Send the device a command (any JSON document), kept until "
                                "it acknowledges it",
                     "operationId": "sendCommand",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {}}}},
                     "responses": {"202": _json("stored and announced", "CommandId"),
                                   **_ERRORS}},
            "get": {"summary": "The device's commands not yet acknowledged, oldest first",
                    "operationId": "pendingCommands",
                    "responses": {"200": _json("pending", "Commands"), **_ERRORS}}},
        "/devices/{device}/commands/{command}": {
            "parameters": [_DEVICE, {"name": "command", "in": "path", "required": True,
                                     "schema": {"type": "string",
                                                "pattern": "^[0-9]+-[0-9]+$"}}],
            "delete": {"summary": "The device did the command (its acknowledgement)",
                       "operationId": "commandDone",
                       "responses": {"204": {"description": "removed"}, "404": _PROBLEM,
                                     **_ERRORS}}},
        "/devices/{device}/connect": {"parameters": [_DEVICE], "get": {
            "summary": "A WebSocket session (the route needs `websocket:`): JSON text messages "
                       "update, get, telemetry, ack and command_ack from the device; accepted, "
                       "rejected, delta, command and telemetry_accepted to it "
                       "(docs/devices.md, WebSocket sessions)",
            "operationId": "connectDevice",
            "parameters": [{"name": "shadows", "in": "query", "description":
                            "named shadows to follow besides the classic one, comma-separated "
                            "(at most 10)", "schema": {"type": "string"}}],
            "responses": {"101": {"description": "switching to WebSocket"}, **_ERRORS}}},
    },
    "components": {
        "responses": {"Error": {"description": "the gateway's error document", "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        "schemas": {
            "Error": {"type": "object", "description": "an RFC 9457 problem document",
                      "required": ["type", "title", "status", "detail", "code", "request_id"],
                      "properties": {"type": {"type": "string"},
                                     "title": {"type": "string"},
                                     "status": {"type": "integer"},
                                     "detail": {"type": "string"},
                                     "code": {"type": "string"},
                                     "request_id": {"type": "string"},
                                     "trace_id": {"type": "string"},
                                     "current": {"type": "object", "description":
                                                 "version_conflict: the shadow now"}}},
            "Update": {"type": "object", "required": ["state"], "properties": {
                "state": {"type": "object", "properties": {
                    "desired": {"type": ["object", "null"]},
                    "reported": {"type": ["object", "null"]}},
                    "additionalProperties": False},
                "seq": {"type": "integer", "minimum": 1,
                        "description": "the writer's Lamport clock; omit for arrival order"},
                "version": {"type": "integer", "minimum": 0},
                "writer": {"type": "string",
                           "description": "ignored when the request is authenticated: the "
                                          "consumer is the writer"}}},
            "Shadow": {"type": "object",
                       "required": ["state", "metadata", "version", "clock", "timestamp"],
                       "properties": {
                           "state": {"type": "object", "properties": {
                               "desired": _OBJ, "reported": _OBJ, "delta": _OBJ}},
                           "metadata": _OBJ, "version": {"type": "integer"},
                           "clock": {"type": "integer"}, "timestamp": {"type": "number"},
                           "version_vector": {"type": "object", "additionalProperties": {
                               "type": "integer"}}}},
            "Accepted": {"allOf": [{"$ref": "#/components/schemas/Shadow"}, {
                "type": "object", "properties": {
                    "outcome": {"enum": ["applied", "duplicate", "stale"]},
                    "suppressed": {"type": "array", "items": {"type": "string"}}}}]},
            "Conflict": {"allOf": [{"$ref": "#/components/schemas/Error"}, {
                "type": "object", "properties": {
                    "code": {"const": "version_conflict"},
                    "current": {"$ref": "#/components/schemas/Shadow"}}}]},
            "Delta": {"type": "object", "properties": {
                "version": {"type": "integer"}, "clock": {"type": "integer"},
                "delta": _OBJ}},
            "Stored": {"type": "object", "properties": {
                "stored": {"type": "boolean"}, "id": {"type": "string"}}},
            "CommandId": {"type": "object", "properties": {"id": {"type": "string"}}},
            "Commands": {"type": "object", "properties": {"commands": {
                "type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "command": {}, "timestamp": {"type": "number"}}}}}},
        },
    },
}
