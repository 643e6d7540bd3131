"""Listening: bind the socket, refuse unsafe bindings, run uvicorn (here or in a thread).

uvicorn's HTTP/1.1 protocol waits for a request's headers without end (its
keep-alive timer stops at the first byte), so a client that sends half a header,
or dribbles one byte at a time, would hold its connection forever. ``Deadline``
gives every request ``Limits.header_timeout`` seconds from the connection (or the
end of the previous response) to the end of its headers, then closes it. A
WebSocket is past its headers once upgraded and stays as long as it likes.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from beadsmail import boundary
from beadsmail.errors import InvalidInput
from beadsmail.server.app import Server
from beadsmail.server.security import Limits


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick "
                           "another --port or --host") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def build(ws, *, host: str, identity: str, projects: list[str], allow_origins: list[str],
          limits: Limits | None = None, require_tokens: bool | None = None) -> Server:
    if limits is None:  # JSON nesting as deep as the boundary lets clones read
        limits = Limits(max_depth=boundary.Limits.of(ws.config).depth)
    server = Server(ws, host=host, identity=identity, projects=projects, limits=limits,
                    allow_origins=allow_origins, require_tokens=require_tokens)
    if server.guard.require_tokens and not server.tokens.active():
        raise InvalidInput(f"binding to {host} (not loopback) requires agent tokens, and there "
                           "are none: create one with 'bd agent token create NAME', or serve "
                           "on 127.0.0.1")
    return server


class Deadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's headers."""

    header_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def handle_websocket_upgrade(self, event) -> None:
        self._disarm()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm()   # the next request's headers (a pipelined one disarms it at once)
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


def _uvicorn(server: Server, limits: Limits) -> uvicorn.Server:
    protocol = type("Deadline", (Deadline,), {"header_timeout": limits.header_timeout})
    config = uvicorn.Config(server.app(), log_level="warning", access_log=False, http=protocol,
                            ws="websockets-sansio", ws_max_size=limits.max_frame,
                            ws_per_message_deflate=False, proxy_headers=False,
                            server_header=False, lifespan="on")
    return uvicorn.Server(config)


def run(ws, *, host: str, port: int, identity: str, projects: list[str],
        allow_origins: list[str], ready: Callable[[str, list[str]], None] | None = None) -> None:
    server = build(ws, host=host, identity=identity, projects=projects,
                   allow_origins=allow_origins)
    sock = bind(host, port)
    runner = _uvicorn(server, server.limits)

    async def main() -> None:
        task = asyncio.create_task(runner.serve(sockets=[sock]))
        while not runner.started and not task.done():
            await asyncio.sleep(0.02)
        if runner.started and ready is not None:
            ready(url_of(sock), projects)
        await task

    try:
        asyncio.run(main())
    finally:
        sock.close()


class Background:
    """The server in a thread of this process (tests, benchmarks, embedding)."""

    def __init__(self, ws, *, identity: str = "server", projects: list[str] | None = None,
                 host: str = "127.0.0.1", port: int = 0, limits: Limits | None = None,
                 allow_origins: list[str] | None = None,
                 require_tokens: bool | None = None) -> None:
        from beadsmail.server import project_name

        self.projects = projects or [project_name(ws)]
        self.server = build(ws, host=host, identity=identity, projects=self.projects,
                            allow_origins=allow_origins or [], limits=limits,
                            require_tokens=require_tokens)
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.ws_url = self.url.replace("http://", "ws://", 1)
        self.limits = self.server.limits
        self._uvicorn = _uvicorn(self.server, self.limits)
        self._thread = threading.Thread(target=self._run, name="bd-serve", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._uvicorn.serve(sockets=[self.sock]))

    def __enter__(self) -> Background:
        self._thread.start()
        for _ in range(1000):
            if self._uvicorn.started or not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not self._uvicorn.started:
            raise RuntimeError("the server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=10)
        self.sock.close()
