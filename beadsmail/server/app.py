"""The ``bd serve`` application: routes, the guard, start-up and shut-down.

One process over one repository's store: a ``Feed`` (the store thread and the
poller), a ``Stream`` (the delivery order), a ``Hub`` (WebSocket agents and
page observers) and the HTTP API of ``api.ROUTES``. Every request passes the
``Guard`` first (Host, Origin, token); the token is checked before a body is
read, and ``access`` decides what the caller may read. Connected agents that are
registered get a heartbeat on connect and at the configured interval while they
stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

import jsonschema
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from beadsmail import agents, channels, groups, records
from beadsmail.errors import BeadsError, InvalidInput, NotFound, PermissionDenied
from beadsmail.server import access, api, openapi, security, spec13
from beadsmail.server.feed import Feed
from beadsmail.server.hub import (
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHORIZED,
    Hub,
    error_frame,
)
from beadsmail.server.security import Guard, Limits, Principal, bearer
from beadsmail.server.stream import Stream
from beadsmail.tokens import TokenBook

log = logging.getLogger("beadsmail.server")
STATIC = Path(__file__).parent / "static"


class Json(JSONResponse):
    """JSON as the CLI prints it (sequences the domain returns lazily become arrays)."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"),
                          default=_plain).encode("utf-8")


def _plain(value):
    if isinstance(value, (list, tuple, set, frozenset)) or hasattr(value, "__iter__"):
        return list(value)
    return str(value)


def error_response(exc: BaseException) -> JSONResponse:
    if isinstance(exc, BeadsError):
        status = exc.details.get("status") or api.STATUS_CODES.get(exc.code, 400)
        return JSONResponse({"error": {"type": exc.code, "message": exc.message, **exc.details}},
                            status)
    if isinstance(exc, UnicodeError):
        return JSONResponse({"error": {"type": "invalid_input",
                                       "message": "input is not valid UTF-8 text"}}, 400)
    log.exception("request failed")
    return JSONResponse({"error": {"type": "error", "message":
                                   f"internal error: {exc.__class__.__name__}"}}, 500)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (no such path, method not allowed) as the one error object."""
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_input")
    message = {404: f"no such endpoint {request.url.path}; see /openapi.json",
               405: f"{request.method} is not allowed on {request.url.path}; see /openapi.json"}
    return JSONResponse({"error": {"type": kind, "message": message.get(
        exc.status_code, str(exc.detail))}}, exc.status_code, headers=exc.headers)


class GuardMiddleware:
    """Host and Origin checks for every HTTP request and WebSocket handshake; a response
    to a request whose body was not read to its end closes the connection, so an unread
    body is never drained (nor buffered) after the answer."""

    def __init__(self, app, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                self.guard.check_host(headers.get("host"))
                self.guard.check_origin(headers.get("origin"), headers.get("host"))
            except PermissionDenied as exc:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4403, "reason": ""})
                    return
                await error_response(exc)(scope, receive, _closing(send))
                return
            if scope["type"] == "http" and _has_body(headers):
                receive, send = _close_unless_read(receive, send)
        await self.app(scope, receive, send)


def _has_body(headers: dict[str, str]) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0").strip() != "0"


def _closing(send):
    async def closing(message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []),
                                              (b"connection", b"close")]}
        await send(message)
    return closing


def _close_unless_read(receive, send):
    done = False

    async def receiving():
        nonlocal done
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            done = True
        return message

    closing = _closing(send)

    async def sending(message) -> None:
        await (send if done else closing)(message)
    return receiving, sending


class Server:
    def __init__(self, ws, *, host: str, identity: str, projects: list[str],
                 limits: Limits | None = None, allow_origins: list[str] | None = None,
                 require_tokens: bool | None = None, poll: float = 0.05) -> None:
        self.identity = identity
        self.projects = projects
        self.limits = limits or Limits()
        self.tokens = TokenBook(ws.loc.state_dir)
        self.guard = Guard(host, self.tokens, allow_origins, require_tokens)
        self.stream = Stream(ws.loc.state_dir)
        self.feed = Feed(ws, self._on_records, poll)
        self.hub = Hub(self.feed, self.stream, projects, self.limits)
        self.log_route = api.Route(
            "GET", "/api/messages", "log", "The message log, oldest first (the page's view)",
            None, [api.Param("agent", description="sent by or to this agent"),
                   api.Param("channel", description="posted to this channel (without '#')"),
                   api.Param("type", schema=api.MTYPE), api.P_LIMIT, api.P_GROUP,
                   api.Param("before", schema=api.ID, description="only messages before this id")])
        self.routes = [self.log_route, *api.ROUTES]
        self.validators = {r.op: jsonschema.Draft202012Validator(r.body)
                           for r in self.routes if r.body is not None}
        self.document = openapi.document(self.routes, projects)
        self._heartbeats: asyncio.Task | None = None

    def _on_records(self, records_: list[dict]) -> None:
        self.hub.on_records(records_)

    # -- lifecycle -------------------------------------------------------------

    async def startup(self) -> None:
        await self.feed.call(lambda ws: ws.refresh())
        position = await self.feed.call(lambda ws: ws.index.arrival())
        messages = await self.feed.call(lambda ws: ws.index.records_since(0, ("message",)))
        self.stream.load(messages)
        for project in self.projects:
            await self.feed.call(self._ensure_channel, project)
        await self.feed.start(position)
        self._heartbeats = asyncio.create_task(self._beat())

    def _ensure_channel(self, ws, project: str) -> None:
        try:
            channels.show(ws, project)
        except NotFound:
            try:
                channels.create(ws, self.identity, project,
                                "Agents connected to bd serve for this project")
            except BeadsError as exc:
                log.warning("warning: could not create the project channel #%s (%s); "
                            "agents that send without 'to' need it: create it with "
                            "'bd channel create %s' as a manager", project, exc.message, project)

    async def shutdown(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()
        await self.feed.stop()
        self.stream.close()

    async def _beat(self) -> None:
        """Heartbeats for connected agents; the delivery cursors saved every second."""
        interval = max(1.0, float(self.feed.ws.config["agents"]["heartbeat_interval"]) / 2)
        last = 0.0
        while True:
            now = asyncio.get_running_loop().time()
            if now - last >= interval:
                last = now
                for agent in sorted({c.agent for c in self.hub.agents}):
                    await self.feed.call(_heartbeat, agent)
            self.stream.save_cursors()
            await asyncio.sleep(1.0)

    # -- HTTP ------------------------------------------------------------------

    def principal(self, headers, token: str | None = None) -> Principal:
        """Who a request acts as, and whether a token said so (then ``access`` scopes it)."""
        return self.guard.identity(token or bearer(headers), headers.get("x-beads-identity"),
                                   self.identity)

    def who(self, headers, token: str | None = None) -> str:
        return self.principal(headers, token).identity

    async def _body(self, request: Request, route: api.Route):
        if route.body is None:
            return None
        raw = await security.read_body(request.headers, request.stream(), self.limits)
        data = security.loads(raw or b"null", self.limits.max_depth, "request body")
        error = jsonschema.exceptions.best_match(self.validators[route.op].iter_errors(data))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the body"
            raise InvalidInput(f"invalid request body at {where}: {error.message[:300]}")
        return data

    def endpoint(self, route: api.Route):
        async def handle(request: Request) -> Response:
            try:
                me = self.principal(request.headers)  # before the body is read
                params = api.parse_params(route, request.path_params, request.query_params)
                body = await self._body(request, route)
                if route.op == "log":
                    await self.known_group(params.get("group"))
                    result = await self.hub.log(params, await self.hub.reader(me))
                else:
                    result = await self.feed.call(access.call, route.fn, route.op, me, params,
                                                  body)
                return Json(result)
            except ClientDisconnect:
                return Response(status_code=400)  # nobody is left to read it
            except Exception as exc:  # noqa: BLE001 - mapped to a JSON error
                return error_response(exc)
        return handle

    async def known_group(self, group: str | None) -> None:
        """InvalidInput unless ``group`` (if given) is a group the store knows."""
        if group is not None:
            await self.feed.call(_known_group, group)

    async def info(self, request: Request) -> Response:
        try:
            me = self.who(request.headers)
        except BeadsError as exc:
            return error_response(exc)
        return JSONResponse({"projects": self.projects, "identity": me,
                             "tokens_required": self.guard.require_tokens,
                             "connected": sorted({c.agent for c in self.hub.agents}),
                             "statuses": list(api.tasks.STATUSES), "types": list(api.mail.TYPES)})

    # -- WebSocket -------------------------------------------------------------

    async def agent_socket(self, websocket: WebSocket) -> None:
        project = websocket.path_params["project"]
        query = websocket.query_params
        await websocket.accept()
        try:
            if project not in self.projects:
                raise NotFound(f"no project {project!r} here; this server serves "
                               f"{', '.join(self.projects)}")
            agent = query.get("agent_id") or ""
            me = self.principal(websocket.headers, query.get("token"))
            if agent:  # (without one: Spec 13's frontend, below)
                records.check_identity(agent, "agent_id")
                if me.token and me.identity != agent:
                    raise PermissionDenied(f"the token acts as {me.identity}; it cannot connect "
                                           f"as {agent}")
        except BeadsError as exc:
            await websocket.send_json(error_frame(exc))
            code = {"not_found": CLOSE_NOT_FOUND, "permission_denied": CLOSE_UNAUTHORIZED}
            await websocket.close(code.get(exc.code, CLOSE_BAD_REQUEST))
            return
        if not agent:  # Spec 13's frontend: the project's message log
            await spec13.serve_log(self.hub, websocket, project, me)
            return
        await self.hub.serve_agent(websocket, project, Principal(agent, me.token),
                                   query.get("since") or None)

    async def watch_socket(self, websocket: WebSocket) -> None:
        project = websocket.path_params["project"]
        await websocket.accept()
        try:
            if project not in self.projects:
                raise NotFound(f"no project {project!r} here")
            me = self.principal(websocket.headers, websocket.query_params.get("token"))
            group = websocket.query_params.get("group") or None
            await self.known_group(group)
        except BeadsError as exc:
            await websocket.send_json(error_frame(exc))
            code = {"not_found": CLOSE_NOT_FOUND, "invalid_input": CLOSE_BAD_REQUEST}
            await websocket.close(code.get(exc.code, CLOSE_UNAUTHORIZED))
            return
        await self.hub.serve_observer(websocket, project, me, group)

    def app(self) -> Starlette:
        routes = [Route("/", lambda r: FileResponse(STATIC / "index.html")),
                  Route("/openapi.json", lambda r: JSONResponse(self.document)),
                  Route("/api/info", self.info),
                  WebSocketRoute("/ws/agent/messages/{project}", self.agent_socket),
                  WebSocketRoute("/ws/watch/{project}", self.watch_socket),
                  Mount("/static", StaticFiles(directory=STATIC))]
        routes += [Route(r.path, self.endpoint(r), methods=[r.method]) for r in self.routes]
        mcp = _mcp_endpoint(self)
        if mcp is not None:
            from beadsmail.integrations.mcphttp import PATH

            routes.append(Route(PATH, mcp.asgi, methods=["GET", "POST", "DELETE"]))

        @contextlib.asynccontextmanager
        async def lifespan(_app):
            await self.startup()
            try:
                async with mcp.running() if mcp is not None else contextlib.nullcontext():
                    yield
            finally:
                await self.shutdown()

        app = Starlette(routes=routes, lifespan=lifespan,
                        exception_handlers={HTTPException: _http_error})
        app.add_middleware(GuardMiddleware, guard=self.guard)
        return app


def _mcp_endpoint(server: Server):
    """The MCP endpoint (``integrations.mcphttp``), when the ``mcp`` extra is installed."""
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        return None
    from beadsmail.integrations.mcphttp import Endpoint

    return Endpoint(server)


def _known_group(ws, group: str) -> None:
    ws.refresh()
    groups.require(ws.index.conn, group)


def _heartbeat(ws, agent: str) -> None:
    with contextlib.suppress(BeadsError):
        agents.heartbeat(ws, agent)
