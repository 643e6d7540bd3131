"""The MCP server over streamable HTTP, mounted by ``bd serve`` at ``/mcp``.

The endpoint sits behind the server's ``Guard`` (Host and Origin checks, as
every route) and its own gate, which settles the identity of each request from
its headers before a byte of the body is read: an agent token
(``Authorization: Bearer bdt_...``; required off loopback) or, on loopback,
``X-Beads-Identity``; a request with neither is refused (401), since streamable
HTTP clients need not keep a session in which a ``register`` call could fix an
identity. What a session
has been shown (so ``wait_for_mail`` returns only new mail) is kept under
``X-Beads-Session`` if given, else the MCP session id, else the identity. Tool calls run on
the server's store thread, like every other request of ``bd serve``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from beadsmail.errors import BeadsError, PermissionDenied
from beadsmail.integrations import mcpserver
from beadsmail.integrations.surface import Seat
from beadsmail.server.access import Reader
from beadsmail.server.security import Principal
from beadsmail.workspace import Workspace

PATH = "/mcp"
MAX_BODY = 1 << 20


class ServeBackend:
    """Calls on the server's store thread; the identity each request carries."""

    def __init__(self, server) -> None:
        self.feed = server.feed

    async def call(self, fn, *args, **kwargs):
        return await self.feed.call(fn, *args, **kwargs)

    def seat(self, ctx) -> Seat:
        request = ctx.request_context.request
        identity, source = request.scope.get("state", {}).get("beads_identity", (None, None))
        sid = request.headers.get("mcp-session-id") or ""
        session = request.headers.get("x-beads-session") or (
            "mcp-" + sid[:64] if sid else f"mcp-http-{identity}")
        return Seat(identity, source, session[:128])

    async def reader(self, ctx):
        """What a request with a token may read (``server.access``); None without one."""
        request = ctx.request_context.request
        identity, source = request.scope.get("state", {}).get("beads_identity", (None, None))
        if source != "token" or identity is None:
            return None
        return await self.feed.call(Reader.of, Principal(identity, token=True))

    def waiting_workspace(self) -> Workspace:
        return Workspace(self.feed.ws.loc, self.feed.ws.config)


class Gate:
    """ASGI: settle the request's identity from its headers, then hand it to the SDK."""

    def __init__(self, server, handler) -> None:
        self.server, self.handler = server, handler

    def identity(self, headers: Headers) -> tuple[str, str]:
        token = headers.get("authorization")
        if not (token or headers.get("x-beads-identity") or self.server.guard.require_tokens):
            raise PermissionDenied("say who this MCP client is: send 'X-Beads-Identity: NAME' "
                                   "(or 'Authorization: Bearer <token>', see 'bd agent token "
                                   "create NAME')", status=401)
        return self.server.who(headers), "token" if token else "X-Beads-Identity"

    async def __call__(self, scope, receive, send) -> None:
        try:
            found = self.identity(Headers(scope=scope))
        except BeadsError as exc:
            status = 401 if exc.details.get("status") == 401 or exc.code != "invalid_input" \
                else 400
            body = {"error": {"type": exc.code, "message": exc.message}}
            await JSONResponse(body, status)(scope, receive, send)
            return
        scope.setdefault("state", {})["beads_identity"] = found
        await self.handler(scope, receive, send)


class Endpoint:
    """The mounted MCP endpoint: its ASGI app and the session manager's lifetime."""

    def __init__(self, server) -> None:
        app = mcpserver.build(ServeBackend(server))
        # The SDK's own Host/Origin checks are off: the server's Guard already ran them.
        app.streamable_http_app(streamable_http_path=PATH, max_request_body_size=MAX_BODY,
                                transport_security=TransportSecuritySettings(
                                    enable_dns_rebinding_protection=False))
        self.manager = app.session_manager
        self.asgi = Gate(server, self.manager.handle_request)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield
