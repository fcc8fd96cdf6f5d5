"""Routes declared in one place: method, path, handler, the shapes it reads and answers, its errors.

A handler is declared with ``RouteTable.route`` and takes one ``Call[Body, Query]``;
those two type arguments *are* its request declaration: the wrapper decodes the
body and the query string into them before the handler runs, and the OpenAPI
document describes them. The wrapper also authenticates, checks the key's role
against the route's, answers every failure in the one JSON error shape, and counts
the request for /metrics.

Each route declares the role it needs (``read``, ``write`` or ``admin``). Left out,
a GET route needs ``read`` and any other method ``admin``: a new route that changes
something is closed to lesser keys until it says otherwise.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, get_args, get_type_hints

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..actions import Actor
from .auth import LOCAL, ROLES, Role, allows, same_loopback_origin
from .errors import ApiError, error_response, from_exception
from .inputs import Reader, read_body
from .state import ServerState

log = logging.getLogger("conveyor.server")

B = TypeVar("B")
Q = TypeVar("Q")
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Call(Generic[B, Q]):
    """One request as a handler sees it: already authenticated, its body and query decoded."""

    request: Request
    state: ServerState
    body: B
    query: Q
    #: Who is calling: the key's role and name, as the action trail records them.
    actor: Actor = LOCAL

    def path(self, name: str) -> str:
        """A path parameter (``{job_id}``), as sent."""
        return str(self.request.path_params[name])


Handler = Callable[[Call[Any, Any]], Awaitable[Response]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class ApiRoute:
    """Everything declared about one operation; the server and the OpenAPI document both read it."""

    method: str
    path: str
    handler: Handler
    #: The body's declared type (None: the route reads no body).
    body: Any
    #: The query string's declared Struct (None: the route ignores the query string).
    query: Any
    #: Success status -> the declared type of its JSON body (``str`` for a non-JSON answer).
    responses: Mapping[int, Any]
    #: Error statuses beyond the ones every /api route can answer (400, 401, 403).
    errors: tuple[int, ...]
    auth: bool
    #: The role a key needs (None: no key needed).
    role: Role | None
    media_type: str
    #: The largest body accepted; None means the server's limit for one job.
    body_limit: int | None

    @property
    def summary(self) -> str:
        """The first line of the handler's docstring."""
        return (self.handler.__doc__ or "").strip().splitlines()[0]

    @property
    def operation_id(self) -> str:
        """The handler's name."""
        return self.handler.__name__


class RouteTable:
    """The declared routes, in the order Starlette tries them."""

    def __init__(self) -> None:
        self.routes: list[ApiRoute] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        responses: Mapping[int, Any],
        errors: tuple[int, ...] = (),
        auth: bool = True,
        role: Role | None = None,
        media_type: str = "application/json",
        body_limit: int | None = None,
    ) -> Callable[[H], H]:
        """Declare ``handler`` as ``method path``; its ``Call[Body, Query]`` annotation is its input.

        ``role``: what a key needs to call it; by default ``read`` for GET, ``admin`` otherwise.
        """
        if role is not None and role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        needed: Role | None = None
        if auth:
            needed = role or ("read" if method == "GET" else "admin")

        def register(handler: H) -> H:
            body, query = _call_types(handler)
            self.routes.append(
                ApiRoute(
                    method,
                    path,
                    handler,
                    body,
                    query,
                    responses,
                    errors,
                    auth,
                    needed,
                    media_type,
                    body_limit,
                )
            )
            return handler

        return register

    def include(self, other: RouteTable) -> None:
        """Serve and document ``other``'s routes as this table's own (after those declared so far)."""
        self.routes.extend(other.routes)

    def starlette_routes(self) -> list[Route]:
        """One Starlette route per operation, each wrapped by ``endpoint``."""
        return [Route(r.path, endpoint(r), methods=[r.method]) for r in self.routes]


def _call_types(handler: Handler) -> tuple[Any, Any]:
    """The (body, query) type arguments of the handler's ``Call`` parameter; None for ``None``."""
    (parameter,) = inspect.signature(handler).parameters
    annotation = get_type_hints(handler, include_extras=True)[parameter]
    body, query = get_args(annotation)
    none = type(None)
    return (None if body is none else body), (None if query is none else query)


def authenticate(request: Request, state: ServerState) -> Actor:
    """Who calls: 401 unless ``x-api-key`` matches a configured key (compared in constant time)."""
    if not state.keys.enabled:
        if not same_loopback_origin(request.headers.get("host"), request.headers.get("origin")):
            raise ApiError(
                403,
                "forbidden",
                "this server has no API key and answers only same-origin requests to a loopback host; "
                "configure CONVEYOR_API_KEYS to serve other clients",
            )
        return LOCAL
    presented = next((value for name, value in request.scope["headers"] if name == b"x-api-key"), None)
    if presented is None:
        raise ApiError(401, "unauthorized", "missing x-api-key header: every /api route needs an API key")
    key = state.keys.identify(presented)
    if key is None:
        raise ApiError(401, "unauthorized", "the x-api-key header does not match any configured API key")
    return key.actor


def authorize(route: ApiRoute, actor: Actor) -> None:
    """403, before anything is read or done, unless the caller's role allows the route."""
    needed = route.role
    if needed is None or actor.role is None or allows(actor.role, needed):
        return
    raise ApiError(
        403,
        "forbidden",
        f"this API key has the {actor.role} role; {route.method} {route.path} needs the {needed} role "
        f"(keys are KEY for admin, or ROLE:KEY / ROLE:NAME:KEY with ROLE one of {', '.join(ROLES)})",
    )


def endpoint(route: ApiRoute) -> Endpoint:
    """The Starlette endpoint of a route: authenticate, decode, run, answer errors, count."""
    body_reader: Reader[Any] | None = None if route.body is None else Reader(route.body)
    query_reader: Reader[Any] | None = None if route.query is None else Reader(route.query)
    no_query: Any = None
    if query_reader is not None:
        try:  # decoded once: most requests carry no query string
            no_query = query_reader.query(())
        except ApiError:
            no_query = None

    async def run(request: Request) -> Response:
        state: ServerState = request.app.state.conveyor
        started = time.perf_counter()
        try:
            actor = LOCAL
            if route.auth:
                actor = authenticate(request, state)
                authorize(route, actor)
            query = None
            if query_reader is not None:
                if no_query is not None and not request.scope["query_string"]:
                    query = no_query
                else:
                    query = query_reader.query(request.query_params.multi_items())
            body = None
            if body_reader is not None:
                limit = route.body_limit if route.body_limit is not None else state.max_body
                body = body_reader.body(await read_body(request, limit))
            response = await route.handler(Call(request, state, body, query, actor))
        except Exception as exc:
            error = from_exception(exc)
            if error is None:
                log.exception("%s %s failed", request.method, route.path)
                error = ApiError(500, "internal_error", "internal error; the server log has the details")
            response = error_response(error)
        state.metrics.observe(route.path, request.method, response.status_code, time.perf_counter() - started)
        return response

    run.__name__ = route.handler.__name__
    run.__doc__ = route.handler.__doc__
    return run
