"""Channels: named rooms (``#name``) that agents join, post to and read.

A channel is a ``channel`` record (create/delete, managers only), joining and
leaving are ``membership`` records, and a post is an ordinary ``message``
addressed to ``#name``, so ``bd mail send '#name'`` and ``bd channel post``
write the same thing and members see posts in their inbox. ``#review-queue``
and ``#review-log`` always exist for the task board, which posts to them when a
task enters or leaves review; anyone may post to them.

A channel belongs to a group (the one given at creation, else its creator's) or,
without one, to every group; views scoped to a group show its own and the shared
channels, and in a shared channel the posts of its agents (see ``groups``).
"""

from __future__ import annotations

import json
import re

from beadsmail import addressing, groups, permissions, records
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


def create(ws, actor: str, name: str, description: str | None = None,
           group: str | None = None) -> dict:
    """Create a channel (managers only) in ``group``, else the creator's; the creator joins."""
    name = normalize(name)
    if description is not None and len(description) > 1000:
        raise InvalidInput("channel description must be at most 1000 characters")
    if group is not None:
        records.check_identity(group, "group")
    default_role = ws.config["agents"]["default_role"]
    fields = {"op": "create", "name": name}

    def check(index) -> None:
        permissions.require(index, actor, "channel.create", default_role)
        if _exists(index.conn, name):
            raise Conflict(f"channel #{name} already exists; post with 'bd channel post {name} -m ...'")
        owner = group or groups.of(index.conn, actor)
        if owner:
            fields["group"] = owner

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


def _summary(conn, name: str, row: dict | None, group: str | None = None) -> dict:
    count, last = registry.channel_stats(conn, name, group)
    row = row or {}
    return {"name": name, "description": row.get("description"), "group": row.get("group"),
            "created_by": row.get("created_by"), "created_at": row.get("created_at"),
            "builtin": name in BUILTIN_CHANNELS, "members": registry.members(conn, name),
            "messages": count, "last_post_at": last}


def list_channels(ws, group: str | None = None) -> list[dict]:
    """Every channel with its members and message count (the task board's always included);
    with ``group``, that group's and the shared ones, counting what it sees of them."""
    ws.refresh()
    conn = ws.index.conn
    if group is not None:
        groups.require(conn, group)
    rows = {c["name"]: c for c in registry.channels(conn)}
    names = sorted(set(rows) | set(BUILTIN_CHANNELS))
    return [_summary(conn, name, rows.get(name), group) for name in names
            if groups.sees_channel((rows.get(name) or {}).get("group"), group)]


def _visible(conn, name: str, group: str | None) -> dict | None:
    """The channel's row, after checking it exists and ``group`` (if any) may see it."""
    _require(conn, name)
    row = registry.channel(conn, name)
    if group is not None:
        groups.require(conn, group)
        if not groups.sees_channel((row or {}).get("group"), group):
            raise NotFound(f"no channel #{name} in group {group} (it belongs to group "
                           f"{row['group']}); see 'bd channel list --group {group}'")
    return row


def show(ws, name: str, group: str | None = None) -> dict:
    ws.refresh()
    conn = ws.index.conn
    name = normalize(name)
    return _summary(conn, name, _visible(conn, name, group), group)


def post(ws, actor: str, name: str, body: str, subject: str | None = None,
         type_: str = DEFAULT_TYPE, priority: int | None = None) -> dict:
    """Post a message to ``#name`` (validated like mail); return it with its ``warnings``
    (hooks, packing) and ``dead_letters`` (none: the channel must exist)."""
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
    dead: list[dict] = []

    def check(index) -> None:
        permissions.require(index, actor, "channel.post", default_role)
        _require(index.conn, name)
        found = addressing.check_send(index, ws.config, actor, ["#" + name])
        warnings.extend(found[0])
        dead.extend(found[1])

    written = ws.write(actor, [("message", fields)], f"channel: {actor} -> #{name}", check=check)
    record = written.records[0]
    warnings += written.warnings
    warnings += ws.hook_runner().run(ws.loc.worktree, "on_message", record, "send")
    return {"channel": name, **_message(record), "warnings": warnings, "dead_letters": dead}


def _message(record: dict) -> dict:
    out = {key: record.get(key) for key in
           ("id", "from", "subject", "body", "type", "priority", "created_at", "thread_id",
            "replies_to", "metadata")}
    out["sender_group"] = records.sender_group(record)
    return out


def read(ws, name: str, limit: int = 20, group: str | None = None) -> dict:
    """A channel's newest ``limit`` messages, oldest first (reading changes no state); with
    ``group``, as that group sees the channel (see ``groups``)."""
    if limit < 1:
        raise InvalidInput("--limit must be at least 1")
    ws.refresh()
    conn = ws.index.conn
    name = normalize(name)
    _visible(conn, name, group)
    messages = [_message(json.loads(d))
                for d in registry.channel_messages(conn, name, limit, group)]
    count, _ = registry.channel_stats(conn, name, group)
    return {"channel": name, "group": group, "messages": messages, "total": count}


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
