"""The OpenAPI 3.1 document, generated from the route table and the declared shapes.

Nothing here is written by hand per route: paths, parameters, request bodies and
responses come from each ``ApiRoute`` and the JSON Schema that msgspec derives
from its types, so the document cannot drift from what the server checks.
"""

from __future__ import annotations

import copy
import re
import types
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, Union, get_args, get_origin

import msgspec

from .inputs import accepts_none, struct_of
from .routing import ApiRoute
from .shapes import Error, Parsed

REF = "#/components/schemas/{name}"
ERROR_WORDS = {
    400: "Malformed JSON, wrong types or values, unknown fields or parameters",
    401: "Missing or wrong x-api-key",
    403: "The key's role does not allow this route (or, on a key-less server, a request that is not "
    "same-origin loopback); nothing was done",
    404: "Unknown job",
    409: "The job is not in a state that allows this",
    413: "Payload too large",
    422: "Unknown task, status word or queue name, or arguments that do not fit the task",
}
STATUS_WORDS = {200: "OK", 201: "Created", 503: "The backend does not answer"}
PATH_PARAMETERS = {"job_id": "A job id (32 hex digits)."}
#: What every route behind the key can answer, whatever it does.
API_ERRORS = (400, 401, 403)
_PATH_PARAMETER = re.compile(r"{(\w+)}")
_UNIONS = (Union, types.UnionType)


def _schema_hook(kind: type) -> dict[str, Any]:
    if issubclass(kind, Parsed):
        return copy.deepcopy(kind.json_schema)
    raise NotImplementedError(f"no JSON Schema for {kind!r}")


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` less its ``null`` alternative: for an absent parameter or body, not a JSON null."""
    members = schema.get("anyOf")
    if not members or {"type": "null"} not in members:
        return schema
    rest = [m for m in members if m != {"type": "null"}]
    outer = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**outer, **rest[0]} if len(rest) == 1 else {**outer, "anyOf": rest}


def _parameters(query: Any, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The query parameters of a declared query Struct (its properties), aliases marked deprecated."""
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(prop)
        description = prop.pop("description", None)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    for alias, canonical in getattr(query, "aliases", {}).items():
        (original,) = (p for p in parameters if p["name"] == canonical)
        parameters.append(
            {**original, "name": alias, "deprecated": True, "description": f"Same as {canonical}."}
        )
    return parameters


def _json(schema: dict[str, Any], description: str, media_type: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def _operation(route: ApiRoute, schema_of: dict[int, dict[str, Any]], query_schema: Any) -> dict[str, Any]:
    """One operation object: summary, parameters, body, responses, security."""
    operation: dict[str, Any] = {"summary": route.summary, "operationId": route.operation_id}
    if route.role is not None:
        lesser = {"read": "", "write": " or admin", "admin": ""}[route.role]
        operation["description"] = f"Needs a key with the {route.role} role{lesser}."
        if route.role == "read":
            operation["description"] = "Needs a key of any role (read, write or admin)."
        operation["x-conveyor-role"] = route.role
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": PATH_PARAMETERS.get(name, name),
        }
        for name in _PATH_PARAMETER.findall(route.path)
    ]
    if route.query is not None:
        parameters += _parameters(route.query, query_schema)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        body: dict[str, Any] = {
            "required": not accepts_none(route.body),
            "content": {"application/json": {"schema": _without_null(schema_of[id(route.body)])}},
        }
        spellings = getattr(struct_of(route.body), "aliases", {})
        if spellings:
            body["description"] = "Also accepted: " + ", ".join(f"{a} for {c}" for a, c in spellings.items())
        operation["requestBody"] = body
    responses: dict[str, Any] = {}
    for status, shape in route.responses.items():
        words = STATUS_WORDS.get(status, "OK")
        if route.media_type == "application/json":
            responses[str(status)] = _json(schema_of[id(shape)], words)
        else:
            responses[str(status)] = _json({"type": "string"}, words, route.media_type)
    errors = (API_ERRORS if route.auth else ()) + route.errors
    for status in sorted(set(errors)):
        responses[str(status)] = _json({"$ref": REF.format(name="Error")}, ERROR_WORDS[status])
    operation["responses"] = responses
    if not route.auth:
        operation["security"] = []
    return operation


def build_document(routes: Sequence[ApiRoute], task_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The document describing ``routes``; ``task_names`` (when given) are the tasks ``task`` accepts."""
    shapes: list[Any] = [Error]
    responses: list[Any] = []
    for route in routes:
        shapes += [route.body] if route.body is not None else []
        if route.media_type == "application/json":
            responses += route.responses.values()
    # msgspec cannot decode a union of untagged Structs, so it will not describe one either:
    # a response that is one of several shapes is described member by member.
    members = {id(r): list(get_args(r)) if get_origin(r) in _UNIONS else [r] for r in responses}
    queries = [route.query for route in routes if route.query is not None]
    every = shapes + [m for ms in members.values() for m in ms] + queries
    generated, components = msgspec.json.schema_components(every, schema_hook=_schema_hook, ref_template=REF)
    schema_of = {id(shape): schema for shape, schema in zip(every, generated, strict=False)}
    for response, alternatives in members.items():
        one_of = [schema_of[id(m)] for m in alternatives]
        schema_of[response] = one_of[0] if len(one_of) == 1 else {"oneOf": one_of}
    # Query Structs become parameter lists, not schemas of their own.
    query_schemas = {id(q): components.pop(q.__name__, {}) for q in queries}
    if task_names is not None:
        # The served document names this server's tasks, so clients (and fuzzers) know them.
        components["JobRequest"]["properties"]["task"]["enum"] = list(task_names)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        query_schema = query_schemas.get(id(route.query), {})
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schema_of, query_schema)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Conveyor",
            "version": version("conveyor"),  # not conveyor.__version__: the package root imports the server
            "description": "Background job queue: enqueue, inspect, retry, cancel, purge and process jobs.",
        },
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": components,
        },
        "paths": paths,
    }
