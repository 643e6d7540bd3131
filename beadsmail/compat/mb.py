"""The message-bus skill's scripts on beadsmail: ``mb-send``, ``mb-recv``, ``mb-register``...

An ``mb`` message is a beadsmail message: the payload's ``subject``, ``body``,
``context`` and ``action_requested`` are the message's own fields; the bus's
type and its 1-10 priority are kept exactly in ``metadata`` (``mb_type``,
``mb_priority``) and mapped onto ``bd``'s type and 0-4 priority so ``bd``
users see the same urgency (``bd_priority``). A broadcast goes to ``*`` (every
registered agent), each reader keeping its own read state. Receiving records a
read receipt; ``--peek`` records nothing. An instance is an agent:
``mb-register`` registers it (role ``project`` unless given) with the tmux
session, description, initiative and worktree as its ``details``.
"""

from __future__ import annotations

import json
import re

from beadsmail import agents, mail
from beadsmail.errors import InvalidInput
from beadsmail.index import registry

DEFAULT_PRIORITIES = {"guidance": 3, "completion": 5, "broadcast": 5, "query": 4,
                      "response": 4, "urgent": 1, "heartbeat": 10}
OTHER_PRIORITY = 5  # a type the table does not name (the document's "announcement")
TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
PAYLOAD_KEYS = ("subject", "body", "context", "action_requested")
FROM_BD = {0: 1, 1: 3, 2: 5, 3: 7, 4: 10}  # a message sent with bd, seen through mb
DETAILS = ("tmux_session", "description", "initiative", "worktree")


def bd_priority(priority: int) -> int:
    """1 -> 0 (urgent), 2-3 -> 1, 4-5 -> 2, 6-8 -> 3, 9-10 -> 4."""
    for bd, top in ((0, 1), (1, 3), (2, 5), (3, 8)):
        if priority <= top:
            return bd
    return 4


def _payload(text: str) -> dict:
    try:
        payload = json.loads(text)
    except ValueError:
        raise InvalidInput("the payload is not JSON: give an object like "
                           "'{\"subject\": \"...\", \"body\": \"...\"}'") from None
    if not isinstance(payload, dict):
        raise InvalidInput("the payload must be a JSON object with subject and body")
    for key in ("subject", "body"):
        if key in payload and not isinstance(payload[key], str):
            raise InvalidInput(f"the payload's {key!r} must be text")
    return payload


def send(ws, me: str, to: str | None, type_: str, payload_text: str, *, urgent: bool = False,
         priority: int | None = None) -> dict:
    """``mb-send <to> <type> '<json>' [--urgent]`` (``to`` None: ``--broadcast``)."""
    if not TYPE_RE.match(type_):
        raise InvalidInput(f"invalid message type {type_!r}: use a word such as guidance, "
                           f"{', '.join(DEFAULT_PRIORITIES)}")
    if priority is not None and not 1 <= priority <= 10:
        raise InvalidInput(f"priority {priority} is out of range: use 1 (highest) to 10")
    payload = _payload(payload_text)
    mb_priority = priority or (1 if urgent else DEFAULT_PRIORITIES.get(type_, OTHER_PRIORITY))
    body = payload.get("body") or payload.get("subject") or type_
    subject = (payload.get("subject") or body.strip().splitlines()[0])[:mail.MAX_SUBJECT]
    extra = {k: v for k, v in payload.items() if k not in PAYLOAD_KEYS}
    metadata = {"mb_type": type_, "mb_priority": mb_priority, **({"payload": extra} if extra
                                                                 else {})}
    bd_type = type_ if type_ in mail.TYPES else ("broadcast" if to is None else "request")
    view = mail.send(ws, me, [to or "*"], subject, body, type_=bd_type,
                     priority=bd_priority(mb_priority), context=payload.get("context"),
                     action=payload.get("action_requested") or "none", metadata=metadata)
    return message(view)


def mb_priority(view: dict) -> int:
    """The bus priority a message was sent with (1-10), kept exactly; for one written
    another way (``bd``, or metadata that is not a 1-10 whole number), from bd's 0-4."""
    kept = (view.get("metadata") or {}).get("mb_priority")
    if type(kept) is int and 1 <= kept <= 10:
        return kept
    return FROM_BD[view["priority"]]


def message(view: dict, recipient: str | None = None) -> dict:
    """A message as the bus shows it."""
    meta = view.get("metadata") or {}
    payload = {"subject": view["subject"], "body": view["body"], "context": view.get("context"),
               "action_requested": view.get("action_requested"), **(meta.get("payload") or {})}
    return {"id": view["id"], "sender": view["from"],
            "recipient": recipient or ",".join(view["to"]),
            "type": meta.get("mb_type") or view["type"], "priority": mb_priority(view),
            "bd_priority": view["priority"], "payload": payload,
            "created_at": view["created_at"], "status": view.get("state") or "unread"}


def recv(ws, instance: str, *, peek: bool = False, wait: float | None = None) -> list[dict]:
    """Unread messages for ``instance``, oldest first, now read (``peek``: left unread)."""
    if wait:
        from beadsmail import wake

        wake.wait_inbox(ws, instance, wait, unread=True)
    found = list(reversed(mail.inbox(ws, instance, unread=True)))
    if not peek:
        for view in found:
            mail.read(ws, instance, view["id"])
    return [message({**v, "state": "unread" if peek else "read"}, instance) for v in found]


def register(ws, me: str | None, instance: str, tmux_session: str | None = None,
             description: str | None = None, *, initiative: str | None = None,
             worktree: str | None = None, role: str | None = None) -> dict:
    """``mb-register <id> <tmux-session> <description> --initiative= --worktree=``."""
    details = {k: v for k, v in zip(DETAILS, (tmux_session, description, initiative, worktree),
                                    strict=True) if v is not None}
    ws.refresh()
    row = registry.agent(ws.index.conn, instance)
    update = bool(row and row["registered"])
    view = agents.register(ws, me or instance, instance, role=role or (None if update
                                                                       else "project"),
                           name=description, details=details, update=update)
    return instance_row(view)


def unregister(ws, me: str | None, instance: str) -> dict:
    done = agents.unregister(ws, me or instance, instance)
    return {"instance_id": instance, "status": "unregistered", "record": done["record"]}


def instance_row(view: dict) -> dict:
    details = view.get("details") or {}
    return {"instance_id": view["id"], **{k: details.get(k) for k in DETAILS},
            "status": view["status"] if view.get("registered", True) else "unregistered",
            "liveness": view.get("liveness"), "registered_at": view.get("registered_at"),
            "last_seen": view.get("last_seen"), "unread": view.get("unread"),
            "role": view.get("role")}


def list_instances(ws, include_all: bool = False) -> list[dict]:
    """Registered, active instances (``include_all``: also stopped and unregistered ones)."""
    rows = [instance_row(v) for v in agents.list_agents(ws, include_all=include_all)]
    return rows if include_all else [r for r in rows if r["status"] == "active"]


def status(ws) -> dict:
    """The queue at a glance: instances with their unread mail, and the totals."""
    from beadsmail import addressing

    rows = list_instances(ws, include_all=True)
    return {"instances": rows, "active": sum(r["status"] == "active" for r in rows),
            "unread": sum(r["unread"] or 0 for r in rows if r["status"] != "unregistered"),
            "dead_letters": len(addressing.dead_letters(ws))}


# -- text -----------------------------------------------------------------------

def render_messages(found: list[dict]) -> str:
    if not found:
        return "No pending messages."
    lines = []
    for m in found:
        p = m["payload"]
        lines.append(f"[{m['type']}] from {m['sender']} (priority {m['priority']}) "
                     f"{m['created_at'][:19]}  {m['id']}")
        lines.append(f"  Subject: {p['subject']}")
        lines += [f"  {line}" for line in p["body"].splitlines()]
        if p.get("action_requested") not in (None, "none"):
            lines.append(f"  Action requested: {p['action_requested']}")
    return "\n".join(lines)


def render_instances(rows: list[dict]) -> str:
    if not rows:
        return "No active orchestrators."
    return "\n".join(f"{r['instance_id']:<20} {r['status']:<12} {r['tmux_session'] or '-':<16} "
                     f"{r['initiative'] or '-':<12} {r['description'] or ''}"
                     + (f"  [{r['worktree']}]" if r["worktree"] else "") for r in rows)


def render_status(d: dict) -> str:
    head = (f"Message bus: {d['active']} active instance{'s' if d['active'] != 1 else ''}, "
            f"{d['unread']} unread message{'s' if d['unread'] != 1 else ''}, "
            f"{d['dead_letters']} dead letter{'s' if d['dead_letters'] != 1 else ''}")
    lines = [f"  {r['instance_id']:<20} {r['status']:<12} {r['liveness'] or '-':<10} "
             f"unread {r['unread'] or 0}" for r in d["instances"]]
    return "\n".join([head, *lines])
