"""The OpenAPI 3.1 description of the HTTP API, built from ``api.ROUTES``.

Served at ``/openapi.json``. Parameters and request bodies come from the same
declarations the server validates with; every operation documents its error
responses with the one error shape (``{"error": {"type", "message", ...}}``).
"""

from __future__ import annotations

from beadsmail import __version__
from beadsmail.server.api import Route

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["type", "message"],
    "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}}}
ERRORS = {"400": "bad input: the message says what was wrong and what to do",
          "403": "refused: permission, token or origin",
          "404": "no such message, task, channel or agent",
          "409": "conflict: e.g. the task moved since the version you read"}


def _operation(route: Route) -> dict:
    op: dict = {"operationId": route.op, "summary": route.summary, "tags": [route.tag],
                "parameters": [], "responses": {
                    "200": {"description": "the result, as `bd ... --json` prints it",
                            "content": {"application/json": {"schema": {}}}}}}
    for code, text in ERRORS.items():
        op["responses"][code] = {"description": text,
                                 "content": {"application/json": {"schema": ERROR}}}
    for p in route.params:
        op["parameters"].append({"name": p.name, "in": p.where, "required": p.required,
                                 "description": p.description, "schema": p.schema})
    if route.writes or route.body is not None:
        op["parameters"].append({"name": "X-Beads-Identity", "in": "header", "required": False,
                                 "description": "act as this identity (loopback servers only; "
                                 "with a token the token decides)",
                                 "schema": {"type": "string",
                                            "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}})
    if route.body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": route.body}}}
    return op


def document(routes: list[Route], projects: list[str]) -> dict:
    paths: dict = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "beadsmail", "version": __version__, "description":
                 "The HTTP API of `bd serve`: mail, channels, agents and the task board of one "
                 "repository's store. Agents that keep a connection use the WebSocket bus at "
                 f"/ws/agent/messages/{{project}} (projects: {', '.join(projects)}); see "
                 "docs/server.md."},
        "paths": paths,
        "components": {"securitySchemes": {"token": {
            "type": "http", "scheme": "bearer",
            "description": "an agent token from `bd agent token create` (required when the "
                           "server is not bound to loopback)"}}},
        "security": [{}, {"token": []}],
    }
