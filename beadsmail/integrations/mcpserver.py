"""The MCP server: the agent's operations (``surface``) as tools and resources.

Built on the official ``mcp`` SDK (``MCPServer``), which turns each tool's
annotated arguments into the input schema a model reads. The same server runs
over stdio (``bd mcp``: one process per agent session) and over streamable
HTTP (mounted at ``/mcp`` by ``bd serve``). A ``Backend`` says how a call
reaches the store and whom it acts as:

- ``StdioBackend`` owns a workspace on one worker thread (so SQLite and the
  store lock are used exactly as a ``bd`` process uses them) and one ``Seat``.
- ``bd serve`` passes its own backend (``server.mcp``): calls run on the
  server's store thread, and each request's identity comes from its token or
  ``X-Beads-Identity`` header, checked before the request body is read.

Every domain error becomes a tool error carrying the CLI's one-line message.
``wait_for_mail`` blocks in a thread of its own on ``wake.wait_inbox`` (woken
by the store heads moving, as ``bd mail inbox --wait`` is) and stops when the
client cancels the call.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from beadsmail import mail, tasks
from beadsmail.integrations import surface
from beadsmail.integrations.surface import Seat
from beadsmail.workspace import Workspace

NAME = "beadsmail"
MAX_WAIT = 3600.0
INSTRUCTIONS = (
    "beadsmail: mail, channels and a task board shared by the agents working on this "
    "repository. Start with whoami (call register first if it has no identity). Check "
    "inbox, read a message in full with read, and ack it when done; reply keeps the thread. "
    "To wait for the next message without polling, call wait_for_mail. Tasks move "
    "backlog -> todo -> in_progress -> review -> done; task_move needs the version you read "
    "(a stale version is refused: list again and retry).")


class StdioBackend:
    """One agent session in its own process: a workspace on one thread, one seat."""

    def __init__(self, ws: Workspace, seat: Seat) -> None:
        self.ws = Workspace(ws.loc, ws.config)
        self.stdio_seat = seat
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bd-mcp")

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.wrap_future(self._pool.submit(fn, self.ws, *args, **kwargs))

    def seat(self, ctx: Context | None) -> Seat:
        return self.stdio_seat

    async def reader(self, ctx: Context | None):
        return None  # the local user reads everything, as the CLI does

    def waiting_workspace(self) -> Workspace:
        return Workspace(self.ws.loc, self.ws.config)

    def close(self) -> None:
        self._pool.submit(self.ws.close).result()
        self._pool.shutdown(wait=True)


async def _run(backend, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return await backend.call(fn, *args, **kwargs)
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a tool error
        raise ToolError(surface.describe(exc)) from None


async def _readable(backend, ctx: Context | None, message: str | None = None,
                    channel: str | None = None):
    """What this request's token may read (None: everything; see ``server.access``),
    after refusing ``message`` or ``channel`` when it may not read them."""
    try:
        reader = await backend.reader(ctx)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a tool error
        raise ToolError(surface.describe(exc)) from None
    if reader is not None and message is not None:
        await _run(backend, reader.message, message)
    if reader is not None and channel:
        await _run(backend, lambda ws: reader.channel(channel))
    return reader


async def _call(backend, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> CallToolResult:
    return _result(await _run(backend, fn, *args, **kwargs))


def _result(value: Any) -> CallToolResult:
    """The value as structured content, and as compact JSON text for clients that read
    only text (the SDK would indent it: more of the model's context for nothing)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=json.loads(text))


def _exact(tool: Callable[..., Any]) -> Callable[..., Any]:
    """A failed call's result carries exactly the CLI's message (the SDK would prefix it)."""
    @functools.wraps(tool)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await tool(*args, **kwargs)
        except ToolError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))],
                                  is_error=True)
    return call


def _me(backend, ctx: Context | None) -> tuple[str, str | None]:
    seat = backend.seat(ctx)
    try:
        return seat.me(), seat.session
    except Exception as exc:  # noqa: BLE001
        raise ToolError(surface.describe(exc)) from None


async def _wait(backend, ctx: Context | None, seconds: float) -> dict:
    me, session = _me(backend, ctx)
    if not 0 <= seconds <= MAX_WAIT:
        raise ToolError(f"timeout_seconds {seconds:g} is out of range: give 0 to {MAX_WAIT:g}")
    stop = threading.Event()

    def block() -> dict:
        ws = backend.waiting_workspace()
        try:
            return surface.wait(ws, me, session, seconds, stop)
        finally:
            ws.close()

    try:
        return await anyio.to_thread.run_sync(block, abandon_on_cancel=True)
    except Exception as exc:  # noqa: BLE001
        raise ToolError(surface.describe(exc)) from None
    finally:
        stop.set()  # a cancelled call: the waiting thread ends at its next look


# -- argument types (their descriptions are what a model reads) ----------------------

MessageId = Annotated[str, Field(description="A message id (or a unique prefix of one).")]
TaskId = Annotated[str, Field(description="A task id (or a unique prefix of one).")]
Body = Annotated[str, Field(description="The text (Markdown is fine).")]
Recipients = Annotated[list[str], Field(
    min_length=1, description="Agent ids, '#channel', '@group', or '*' for every agent.")]
Priority = Annotated[int | None, Field(
    ge=0, le=4, description="0 urgent ... 4 lowest; default: the type's (2 for plain mail).")]
MessageType = Annotated[str | None, Field(
    description="One of: " + ", ".join(mail.TYPES) + " (default request).")]
Action = Annotated[str, Field(description="What the sender asks for: " + ", ".join(mail.ACTIONS))]
Status = Annotated[str, Field(description="One of: " + ", ".join(tasks.STATUSES))]
Limit = Annotated[int, Field(ge=1, le=500, description="At most this many.")]


def build(backend) -> MCPServer:
    """The MCP server for ``backend`` (stdio or ``bd serve``)."""
    app = MCPServer(NAME, instructions=INSTRUCTIONS, log_level="WARNING",
                    warn_on_duplicate_tools=False)
    _identity_tools(app, backend)
    _mail_tools(app, backend)
    _closing_tools(app, backend)
    _channel_tools(app, backend)
    _task_tools(app, backend)
    _resources(app, backend)
    return app


def _identity_tools(app: MCPServer, backend) -> None:
    @app.tool()
    @_exact
    async def whoami(ctx: Context) -> dict[str, Any]:
        """Who this session acts as, its role, and how much unread and urgent mail it has."""
        return await _call(backend, surface.whoami, backend.seat(ctx))

    @app.tool()
    @_exact
    async def register(
        ctx: Context,
        agent_id: Annotated[str | None, Field(description=(
            "The id to act as (letters, digits, '.', '_', '-'); default: the configured one."))]
        = None,
        role: Annotated[str | None, Field(description=(
            "manager, architect, tester, reviewer, project or worker (default worker)."))]
        = None,
        name: Annotated[str | None, Field(description="A display name.")] = None,
        group: Annotated[str | None, Field(description="A team name ('@group' reaches it).")]
        = None,
        model: Annotated[str | None, Field(description="The model this agent runs on.")] = None,
    ) -> dict[str, Any]:
        """Register this agent (or update its profile). Fixes the session's identity."""
        return await _call(backend, surface.register, backend.seat(ctx), agent_id, role, name,
                          group, model)

    @app.tool()
    @_exact
    async def status(ctx: Context) -> dict[str, Any]:
        """Everyone's liveness and pending mail, channels, dead letters and the review queue."""
        me, _ = _me(backend, ctx)
        return await _call(backend, surface.overview, me)


def _mail_tools(app: MCPServer, backend) -> None:
    @app.tool()
    @_exact
    async def send(ctx: Context, to: Recipients,
                   subject: Annotated[str, Field(description="One line.")], body: Body,
                   priority: Priority = None, type: MessageType = None,  # noqa: A002
                   action: Action = "none") -> dict[str, Any]:
        """Send a message. Returns it with its id."""
        me, _ = _me(backend, ctx)
        return await _call(backend, surface.send, me, to, subject, body, priority=priority,
                          type_=type, action=action)

    @app.tool()
    @_exact
    async def reply(ctx: Context, message_id: MessageId, body: Body,
                    subject: Annotated[str | None, Field(
                        description="Default: 'Re: ' and the parent's subject.")] = None,
                    action: Action = "none") -> dict[str, Any]:
        """Reply to a message, in its thread (to its sender; to its recipients if I sent it)."""
        me, _ = _me(backend, ctx)
        await _readable(backend, ctx, message=message_id)
        return await _call(backend, surface.reply, me, message_id, body, subject, action)

    @app.tool()
    @_exact
    async def inbox(ctx: Context, unread_only: Annotated[bool, Field(
                        description="Only messages not yet read.")] = False,
                    sender: Annotated[str | None, Field(
                        description="Only from this agent.")] = None,
                    limit: Limit = 20) -> dict[str, Any]:
        """Open (not yet acked) mail for me, urgent first, with a body preview. Changes nothing."""
        me, session = _me(backend, ctx)
        return await _call(backend, surface.inbox, me, session, unread_only=unread_only,
                          sender=sender, limit=limit)

    @app.tool()
    @_exact
    async def read(ctx: Context, message_id: MessageId) -> dict[str, Any]:
        """One message in full; marks it read for me (it stays open until ack)."""
        me, session = _me(backend, ctx)
        await _readable(backend, ctx, message=message_id)
        return await _call(backend, surface.read, me, session, message_id)



def _closing_tools(app: MCPServer, backend) -> None:
    @app.tool()
    @_exact
    async def ack(ctx: Context, message_ids: Annotated[list[str], Field(
            min_length=1, description="Message ids to close for me.")]) -> dict[str, Any]:
        """Acknowledge (close) messages for me; they leave my inbox."""
        me, session = _me(backend, ctx)
        return await _call(backend, surface.ack, me, session, message_ids)

    @app.tool()
    @_exact
    async def wait_for_mail(ctx: Context, timeout_seconds: Annotated[float, Field(
            ge=0, le=MAX_WAIT, description="Give up after this many seconds.")] = 60
    ) -> dict[str, Any]:
        """Block until new mail for me arrives (returns it), or until the timeout
        (timed_out true). Use instead of calling inbox in a loop."""
        return _result(await _wait(backend, ctx, timeout_seconds))

    @app.tool()
    @_exact
    async def thread(ctx: Context, message_id: MessageId) -> dict[str, Any]:
        """A message's whole conversation, oldest first."""
        reader = await _readable(backend, ctx, message=message_id)
        found = await _run(backend, surface.thread, message_id)
        if reader is not None:
            found["messages"] = [m for m in found["messages"]
                                 if reader.may_read(m["from"], m["to"])]
        return _result(found)


def _channel_tools(app: MCPServer, backend) -> None:
    @app.tool()
    @_exact
    async def channel_post(ctx: Context, channel: Annotated[str, Field(
                               description="Channel name, with or without '#'.")],
                           body: Body, subject: Annotated[str | None, Field(
                               description="Default: the body's first line.")] = None
                           ) -> dict[str, Any]:
        """Post to a channel: every member sees it."""
        me, _ = _me(backend, ctx)
        return await _call(backend, surface.channel_post, me, channel, body, subject)

    @app.tool()
    @_exact
    async def channel_read(ctx: Context, channel: Annotated[str | None, Field(
                               description="Channel name; omit to list the channels.")] = None,
                           limit: Limit = 20) -> dict[str, Any]:
        """A channel's newest messages (oldest first), or, without a name, every channel."""
        await _readable(backend, ctx, channel=channel)
        return await _call(backend, surface.channel_read, channel, limit)



def _task_tools(app: MCPServer, backend) -> None:
    @app.tool()
    @_exact
    async def task_list(ctx: Context, status: Annotated[str | None, Field(
                            description="Only this status: " + ", ".join(tasks.STATUSES))]
                        = None,
                        mine: Annotated[bool, Field(description="Only tasks assigned to me.")]
                        = False, limit: Limit = 50) -> dict[str, Any]:
        """Tasks on the board with their version (done only when asked for by status)."""
        me, _ = _me(backend, ctx)
        return await _call(backend, surface.task_list, me, status, mine, limit)

    @app.tool()
    @_exact
    async def task_create(ctx: Context, title: Annotated[str, Field(description="One line.")],
                          description: Annotated[str, Field(description="Details.")] = "",
                          priority: Annotated[str, Field(
                              description="low, medium or high.")] = tasks.DEFAULT_PRIORITY,
                          assign: Annotated[str | None, Field(
                              description="Agent id to assign it to.")] = None,
                          parent: Annotated[str | None, Field(
                              description="Parent task id.")] = None,
                          status: Status = tasks.DEFAULT_STATUS) -> dict[str, Any]:
        """Create a task (version 1)."""
        me, _ = _me(backend, ctx)
        return await _call(backend, surface.task_create, me, title, description, priority,
                          assign, parent, status)

    @app.tool()
    @_exact
    async def task_move(ctx: Context, task_id: TaskId, status: Status,
                        version: Annotated[int, Field(ge=1, description=(
                            "The task's version as you last read it; refused if it moved "
                            "since."))]) -> dict[str, Any]:
        """Move a task to another status (entering review posts to #review-queue)."""
        me, _ = _me(backend, ctx)
        return await _call(backend, surface.task_move, me, task_id, status, version)

    @app.tool()
    @_exact
    async def task_comment(ctx: Context, task_id: TaskId, text: Body) -> dict[str, Any]:
        """Comment on a task."""
        me, _ = _me(backend, ctx)
        return await _call(backend, surface.task_comment, me, task_id, text)


def _resources(app: MCPServer, backend) -> None:
    @app.resource("beadsmail://inbox/{agent_id}", name="inbox", mime_type="application/json",
                  description="My open mail (the inbox tool's result); agent_id is my id.")
    async def inbox_resource(agent_id: str, ctx: Context) -> str:
        me, session = _me(backend, ctx)
        if agent_id != me:
            raise ResourceError(f"this session acts as {me}: read beadsmail://inbox/{me}")
        return _dump(await _run(backend, surface.inbox, me, session))

    @app.resource("beadsmail://thread/{message_id}", name="thread",
                  mime_type="application/json", description="A message's whole thread.")
    async def thread_resource(message_id: str, ctx: Context) -> str:
        return _dump(await _run(backend, surface.thread, message_id))


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def run_stdio(ws: Workspace, seat: Seat) -> None:
    """Serve one agent session over stdin/stdout until the client closes it."""
    backend = StdioBackend(ws, seat)
    try:
        anyio.run(functools.partial(build(backend).run_stdio_async))
    finally:
        backend.close()
