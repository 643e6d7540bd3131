"""Channels: named rooms (``#name``) that agents join, post to and read.

A channel is a ``channel`` record (create/delete, managers only), joining and
leaving are ``membership`` records, and a post is an ordinary ``message``
addressed to ``#name``, so ``bd mail send '#name'`` and ``bd channel post``
write the same thing and members see posts in their inbox. ``#review-queue``
and ``#review-log`` always exist for the task board, which posts to them when a
task enters or leaves review; anyone may post to them.
"""

from __future__ import annotations

import json
import re

from beadsmail import addressing, permissions, records
from beadsmail.addressing import BUILTIN_CHANNELS
from beadsmail.errors import Conflict, InvalidInput, NotFound
from beadsmail.index import registry

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SUBJECT_CHARS = 80
DEFAULT_TYPE = "broadcast"


def normalize(name: str) -> str:
    """A channel name from user input (``#`` optional); refuses spaces, paths, capitals."""
    bare = name[1:] if name.startswith("#") else name
    if not NAME_RE.match(bare):
        raise InvalidInput(f"invalid channel name {name!r}: use 1-64 lowercase letters, digits, "
                           "'.', '_' or '-', starting with a letter or digit (no spaces or '/')")
    return bare


def _exists(conn, name: str) -> bool:
    row = registry.channel(conn, name)
    return bool(row and row["active"]) or name in BUILTIN_CHANNELS


def _require(conn, name: str) -> None:
    if not _exists(conn, name):
        known = [c["name"] for c in registry.channels(conn)] + list(BUILTIN_CHANNELS)
        found = addressing.near(name, known)
        hint = f" (did you mean {', '.join('#' + f for f in found)}?)" if found else ""
        raise NotFound(f"no channel #{name}{hint}; see 'bd channel list', or ask a manager to "
                       f"run 'bd channel create {name}'")


def create(ws, actor: str, name: str, description: str | None = None) -> dict:
    """Create a channel (managers only); the creator joins it."""
    name = normalize(name)
    if description is not None and len(description) > 1000:
        raise InvalidInput("channel description must be at most 1000 characters")
    default_role = ws.config["agents"]["default_role"]

    def check(index) -> None:
        permissions.require(index, actor, "channel.create", default_role)
        if _exists(index.conn, name):
            raise Conflict(f"channel #{name} already exists; post with 'bd channel post {name} -m ...'")

    fields = {"op": "create", "name": name}
    if description:
        fields["description"] = description
    written = ws.write(actor, [("channel", fields),
                               ("membership", {"op": "join", "channel": name, "agent": actor})],
                       f"channel: create #{name}", check=check)
    return {**show(ws, name), "record": written.records[0]["id"]}


def delete(ws, actor: str, name: str) -> dict:
    """Delete a channel (managers only); its messages stay stored."""
    name = normalize(name)
    default_role = ws.config["agents"]["default_role"]

    def check(index) -> None:
        permissions.require(index, actor, "channel.delete", default_role)
        row = registry.channel(index.conn, name)
        if not (row and row["active"]):
            raise NotFound(f"no channel #{name} to delete; see 'bd channel list'")

    written = ws.write(actor, [("channel", {"op": "delete", "name": name})],
                       f"channel: delete #{name}", check=check)
    return {"channel": name, "deleted": True, "record": written.records[0]["id"]}


def _summary(conn, name: str, row: dict | None) -> dict:
    count, last = registry.channel_stats(conn, name)
    return {"name": name, "description": (row or {}).get("description"),
            "created_by": (row or {}).get("created_by"), "created_at": (row or {}).get("created_at"),
            "builtin": name in BUILTIN_CHANNELS, "members": registry.members(conn, name),
            "messages": count, "last_post_at": last}


def list_channels(ws) -> list[dict]:
    """Every channel with its members and message count (the task board's always included)."""
    ws.refresh()
    conn = ws.index.conn
    rows = {c["name"]: c for c in registry.channels(conn)}
    return [_summary(conn, name, rows.get(name))
            for name in sorted(set(rows) | set(BUILTIN_CHANNELS))]


def show(ws, name: str) -> dict:
    ws.refresh()
    conn = ws.index.conn
    name = normalize(name)
    _require(conn, name)
    return _summary(conn, name, registry.channel(conn, name))


def post(ws, actor: str, name: str, body: str, subject: str | None = None,
         type_: str = DEFAULT_TYPE, priority: int | None = None) -> tuple[dict, list[str]]:
    """Post a message to ``#name`` (validated like mail); return it and warnings for stderr."""
    from beadsmail import mail

    name = normalize(name)
    body = mail.check_body(body, int(ws.config["mail"]["max_body"]))
    if subject is None:
        subject = next((line.strip() for line in (body or "").splitlines() if line.strip()), "")
        subject = subject[:SUBJECT_CHARS]
    fields = mail.compose(ws, actor, ["#" + name], subject, body, type_=type_, priority=priority,
                          ephemeral=False)
    fields["id"] = fields["thread_id"] = records.new_id(ws.prefix)
    fields["replies_to"] = None
    default_role = ws.config["agents"]["default_role"]
    warnings: list[str] = []

    def check(index) -> None:
        permissions.require(index, actor, "channel.post", default_role)
        _require(index.conn, name)
        warnings.extend(addressing.check_send(index, ws.config, actor, ["#" + name]))

    written = ws.write(actor, [("message", fields)], f"channel: {actor} -> #{name}", check=check)
    record = written.records[0]
    warnings += written.warnings
    warnings += ws.hook_runner().run(ws.loc.worktree, "on_message", record, "send")
    return {"channel": name, **_message(record)}, warnings


def _message(record: dict) -> dict:
    return {key: record.get(key) for key in
            ("id", "from", "subject", "body", "type", "priority", "created_at", "thread_id",
             "replies_to", "metadata")}


def read(ws, name: str, limit: int = 20) -> dict:
    """A channel's newest ``limit`` messages, oldest first (reading changes no state)."""
    if limit < 1:
        raise InvalidInput("--limit must be at least 1")
    ws.refresh()
    conn = ws.index.conn
    name = normalize(name)
    _require(conn, name)
    messages = [_message(json.loads(d)) for d in registry.channel_messages(conn, name, limit)]
    count, _ = registry.channel_stats(conn, name)
    return {"channel": name, "messages": messages, "total": count}


def _membership(ws, actor: str, name: str, agent: str | None, op: str) -> dict:
    name = normalize(name)
    who = records.check_identity(agent, "agent id") if agent else actor
    default_role = ws.config["agents"]["default_role"]
    ws.refresh()
    conn = ws.index.conn
    _require(conn, name)
    if (who in registry.members(conn, name)) == (op == "join"):
        return {"channel": name, "agent": who, "op": op, "changed": False, "record": None}

    def check(index) -> None:
        cap = "channel.join" if who == actor else "channel.create"
        permissions.require(index, actor, cap, default_role)
        _require(index.conn, name)

    written = ws.write(actor, [("membership", {"op": op, "channel": name, "agent": who})],
                       f"channel: {who} {op}s #{name}", check=check)
    return {"channel": name, "agent": who, "op": op, "changed": True,
            "record": written.records[0]["id"]}


def join(ws, actor: str, name: str, agent: str | None = None) -> dict:
    """Join a channel (another agent only as a manager)."""
    return _membership(ws, actor, name, agent, "join")


def leave(ws, actor: str, name: str, agent: str | None = None) -> dict:
    """Leave a channel (another agent only as a manager)."""
    return _membership(ws, actor, name, agent, "leave")
