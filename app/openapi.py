"""The OpenAPI schema as the app really answers: its error bodies and every error status an operation can return.

FastAPI documents its own validation error (a list in `detail`) and nothing but 200/201/422. The app answers
`{"detail": "<sentence>", ...}` for every error (`app.main`), and 422 adds `errors`. Which statuses an operation
can return follows from what it depends on, so a new route is documented without anyone remembering:

* every operation: 422 (a bad parameter, or a value the database cannot hold), 500 (with a request id), 503;
* a request body: 400 (a body that cannot be parsed) and 404 (it names something that does not exist);
* a path parameter: 404; anything but GET: 409;
* a caller read from a token or cookie: 401 (none, expired or revoked); a logged-in user required: 403 too
  (role, account status or CSRF);
* 410 under `/assignments/` (an expired lease); 429 on the login routes.

HTML pages are not in the schema: they answer with pages and redirects, and generated clients have no use for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from app.deps import current_user, optional_user, verify_csrf

ERROR = "Error"
VALIDATION_ERROR = "ValidationError"
RATE_LIMITED_ROUTES = frozenset({"issue_token", "login"})
DESCRIPTIONS = {
    400: "The body could not be parsed.",
    401: "Not logged in, or the token is invalid, expired or revoked.",
    403: "Logged in, but this account may not do this (role or status), or the CSRF token is missing.",
    404: "Something the request names does not exist.",
    409: "The request conflicts with the current state.",
    410: "The assignment's lease expired; get a new task.",
    422: "A parameter or field is invalid; `detail` says which, `errors` lists each (when from request parsing).",
    429: "Too many failed logins; `Retry-After` says when to try again.",
    500: "An unexpected error; nothing was saved. Quote `request_id` when reporting it.",
    503: "The database is busy or unavailable; nothing was saved. Try again after `Retry-After` seconds.",
}
SCHEMAS: dict[str, dict[str, Any]] = {
    ERROR: {
        "title": ERROR,
        "type": "object",
        "required": ["detail"],
        "properties": {
            "detail": {"type": "string", "description": "A sentence saying what went wrong and what to do."},
            "request_id": {"type": "string", "description": "On 500: the id the server's log line carries."},
        },
        "additionalProperties": True,
    },
    VALIDATION_ERROR: {
        "title": VALIDATION_ERROR,
        "type": "object",
        "required": ["detail"],
        "properties": {
            "detail": {"type": "string", "description": "Every problem, as 'field: message; ...'."},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["loc", "msg"],
                    "properties": {
                        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                        "msg": {"type": "string"},
                    },
                },
            },
        },
        "additionalProperties": True,
    },
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def error_statuses(route: APIRoute, method: str, *, path: str, name: str) -> set[int]:
    """The error statuses this operation can answer with (`path` and `name` as mounted)."""
    statuses = {422, 500, 503}
    calls = set(_calls(route.dependant))
    if route.body_field is not None:
        statuses |= {400, 404}
    if route.dependant.path_params:
        statuses.add(404)
    if method != "GET":
        statuses.add(409)
    if optional_user in calls:
        statuses.add(401)
    if current_user in calls:
        statuses |= {401, 403}
    if verify_csrf in calls:
        statuses.add(403)
    if "/assignments/" in path:
        statuses.add(410)
    if name in RATE_LIMITED_ROUTES:
        statuses |= {401, 429}
    # what a route declares itself (`responses={409: ...}`): a business rule its service enforces
    statuses |= {int(s) for s in route.responses if str(s).isdigit() and int(s) in DESCRIPTIONS}
    return statuses


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, str, APIRoute]]:
    """(path as mounted, method, name, route) of every operation the app serves."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.include_in_schema:
            for method in sorted(context.methods or ()):
                yield str(context.path_format), method, str(context.name), route


def _response(status: int) -> dict[str, Any]:
    name = VALIDATION_ERROR if status == 422 else ERROR
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
    return response


def _public(path: str) -> bool:
    return path.startswith("/api/") or path == "/healthz"


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The schema of the JSON API (routes under /api and /healthz) with the real error model on every operation."""
    schema = get_openapi(title=app.title, version=app.version, description=__doc__, routes=app.routes)
    schema["paths"] = {path: ops for path, ops in schema["paths"].items() if _public(path)}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.update(SCHEMAS)
    text = json.dumps(schema["paths"])
    for unused in [n for n in components if n.startswith("Body_") and f"/schemas/{n}" not in text]:
        del components[unused]  # the bodies of HTML forms, which are not in the schema
    schema["components"]["securitySchemes"] = {SECURITY_SCHEME: _password_flow(app)}
    routes = {(path, method): (name, route) for path, method, name, route in api_routes(app)}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            name, route = routes[(path, method.upper())]
            responses = operation.setdefault("responses", {})
            statuses = error_statuses(route, method.upper(), path=path, name=name)
            for status in sorted(statuses):
                responses[str(status)] = _response(status)
            if 401 in statuses and name not in RATE_LIMITED_ROUTES:
                operation["security"] = [{SECURITY_SCHEME: []}]
    return schema


SECURITY_SCHEME = "OAuth2PasswordBearer"
"""Bearer tokens from the OAuth2 password flow: Swagger UI's Authorize button asks for a username and password."""


def _password_flow(app: FastAPI) -> dict[str, Any]:
    return {
        "type": "oauth2",
        "description": "A bearer token from POST /api/v1/auth/token (username and password). In the browser the "
        "session cookie works too; writes with it need the X-CSRF-Token header, which /api/docs adds itself.",
        "flows": {"password": {"tokenUrl": str(app.url_path_for("issue_token")), "scopes": {}}},
    }


def install(app: FastAPI) -> None:
    """Serve `build_openapi(app)` (built once, on first request) at the app's openapi_url."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
