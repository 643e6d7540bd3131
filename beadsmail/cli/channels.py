"""CLI commands: channels (create, delete, list, post, read, join, leave)."""

from __future__ import annotations

from typing import Annotated

import typer

from beadsmail import channels
from beadsmail.cli.common import Identity, Json, identity, workspace
from beadsmail.cli.output import emit, emit_written

Name = Annotated[str, typer.Argument(help="Channel name ('#' optional).", show_default=False)]
Agent = Annotated[str | None, typer.Option(help="Another agent (managers only).")]
Group = Annotated[str | None, typer.Option(
    help="Only what this group sees: its channels and the shared ones, its agents' posts.")]


def render_list(rows: list[dict]) -> str:
    lines = []
    for c in rows:
        members = ", ".join(c["members"]) or "no members"
        note = " (task board)" if c["builtin"] else f" (group {c['group']})" if c["group"] else ""
        count = f"{c['messages']} message{'' if c['messages'] == 1 else 's'}"
        lines.append(f"#{c['name']}{note}: {count}; {members}")
    return "\n".join(lines)


def render_read(d: dict) -> str:
    if not d["messages"]:
        return f"#{d['channel']} has no messages yet"
    lines = [f"#{d['channel']}: last {len(d['messages'])} of {d['total']}"]
    for m in d["messages"]:
        lines.append(f"[{m['created_at'][:19]}] {m['from']} ({m['id']}): {m['subject']}")
        if m["body"].strip() != m["subject"].strip():
            lines += ["    " + line for line in m["body"].splitlines()]
    return "\n".join(lines)


def _membership_text(d: dict) -> str:
    if not d["changed"]:
        return f"{d['agent']} is {'already' if d['op'] == 'join' else 'not'} in #{d['channel']}"
    return f"{d['agent']} {'joined' if d['op'] == 'join' else 'left'} #{d['channel']}"


def register(app: typer.Typer) -> None:
    channel_app = typer.Typer(help="Channels: #rooms that agents join, post to and read.",
                              no_args_is_help=True)
    _admin_commands(channel_app)
    _message_commands(channel_app)
    app.add_typer(channel_app, name="channel")


def _admin_commands(channel_app: typer.Typer) -> None:
    @channel_app.command("create")
    def create_(name: Name,
                description: Annotated[str | None, typer.Option(
                    "--description", "-m", help="What it is for.")] = None,
                group: Annotated[str | None, typer.Option(
                    help="The group it belongs to (default: yours; without one: shared).")] = None,
                identity_: Identity = None, json_: Json = False) -> None:
        """Create a channel (managers); you join it.  Example: bd channel create backend"""
        ws = workspace()
        emit(channels.create(ws, identity(ws, identity_), name, description, group), json_,
             lambda c: f"created #{c['name']}")

    @channel_app.command("delete")
    def delete_(name: Name, identity_: Identity = None, json_: Json = False) -> None:
        """Delete a channel (managers); its messages stay stored.  Example: bd channel delete backend"""
        ws = workspace()
        emit(channels.delete(ws, identity(ws, identity_), name), json_,
             lambda d: f"deleted #{d['channel']}")

    @channel_app.command("join")
    def join_(name: Name, agent: Agent = None, identity_: Identity = None,
              json_: Json = False) -> None:
        """Join a channel: its posts reach your inbox.  Example: bd channel join backend"""
        ws = workspace()
        emit(channels.join(ws, identity(ws, identity_), name, agent), json_, _membership_text)

    @channel_app.command("leave")
    def leave_(name: Name, agent: Agent = None, identity_: Identity = None,
               json_: Json = False) -> None:
        """Leave a channel.  Example: bd channel leave backend"""
        ws = workspace()
        emit(channels.leave(ws, identity(ws, identity_), name, agent), json_, _membership_text)


def _message_commands(channel_app: typer.Typer) -> None:
    @channel_app.command("list")
    def list_(group: Group = None, json_: Json = False) -> None:
        """List channels with members and message counts.  Example: bd channel list --json"""
        emit(channels.list_channels(workspace(), group), json_, render_list)

    @channel_app.command("post")
    def post_(
        name: Name,
        message: Annotated[str, typer.Option("-m", "--message", help="The text.",
                                             show_default=False)],
        subject: Annotated[str | None, typer.Option(
            "-s", "--subject", help="Subject (default: the first line).")] = None,
        type_: Annotated[str, typer.Option("--type", help="Message type.")] = channels.DEFAULT_TYPE,
        priority: Annotated[int | None, typer.Option(
            help="0 (urgent) to 4 (default: the type's).")] = None,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Post to a channel (same as bd mail send '#NAME').  Example: bd channel post backend -m 'deploy at 5pm'"""
        ws = workspace()
        result = channels.post(ws, identity(ws, identity_), name, message, subject, type_,
                               priority)
        emit_written(result, json_, lambda m: f"posted {m['id']} to #{m['channel']}")

    @channel_app.command("read")
    def read_(name: Name,
              limit: Annotated[int, typer.Option(help="The newest N messages.")] = 20,
              group: Group = None, json_: Json = False) -> None:
        """Show a channel's latest messages, oldest first.  Example: bd channel read backend --limit 5"""
        emit(channels.read(workspace(), name, limit, group), json_, render_read)
