"""What an agent does, as plain functions over the domain API (no MCP imported here).

Each function takes the workspace and the identity it acts as (``me``) and
returns plain values, exactly what ``bd ... --json`` would print, trimmed where
a listing would otherwise fill a model's context (an inbox shows a preview of
each body; ``read`` shows it whole). ``Seat`` holds who a session acts as: given
by the agent's configuration when it starts, or claimed once by ``register``,
then fixed for the session.
"""

from __future__ import annotations

import threading

from beadsmail import agents, channels, mail, status, tasks, wake
from beadsmail.errors import BeadsError, InvalidInput, NotFound, PermissionDenied

TYPE_CHECKING = False
if TYPE_CHECKING:
    from beadsmail.workspace import Workspace

PREVIEW = 200
BRIEF = ("id", "from", "to", "subject", "priority", "type", "state", "thread_id", "replies_to",
         "action_requested", "created_at")
DEFAULT_ROLE = "worker"


class Seat:
    """The identity one session acts as; once known it never changes."""

    def __init__(self, identity: str | None = None, source: str = "register",
                 session: str | None = None) -> None:
        self.identity, self.source, self.session = identity, source, session
        self._lock = threading.Lock()

    def me(self) -> str:
        if self.identity is None:
            raise InvalidInput("no identity yet: call the register tool with your agent id "
                               "first (or set BEADS_IDENTITY for the MCP server)")
        return self.identity

    def claim(self, agent_id: str) -> str:
        """Fix the identity to ``agent_id`` (refused if another one is already fixed)."""
        with self._lock:
            if self.identity is not None and self.identity != agent_id:
                raise PermissionDenied(f"this session acts as {self.identity} (from "
                                       f"{self.source}); its identity is fixed and cannot "
                                       f"become {agent_id}")
            if self.identity is None:
                self.identity, self.source = agent_id, "register"
            return self.identity


def describe(exc: BaseException) -> str:
    """The one-line message an agent sees for a failed call (the CLI's own wording)."""
    if isinstance(exc, BeadsError):
        text = exc.message
    elif isinstance(exc, UnicodeError):
        text = "input is not valid UTF-8 text"
    else:
        text = f"internal error: {exc.__class__.__name__}: {exc}"
    return " ".join(str(text).split())


def brief(message: dict) -> dict:
    out = {key: message[key] for key in BRIEF if key in message}
    body = message.get("body") or ""
    out["preview"] = body if len(body) <= PREVIEW else body[:PREVIEW - 3] + "..."
    return out


# -- identity -------------------------------------------------------------------

def whoami(ws: Workspace, seat: Seat) -> dict:
    if seat.identity is None:
        return {"identity": None, "source": None, "session": seat.session,
                "hint": "call register with your agent id to act as it"}
    result = mail.whoami(ws, seat.identity, seat.source, seat.session)
    unread = mail.open_mail(ws, seat.identity, unread=True)
    return {**result, "unread": len(unread), "urgent": sum(m["priority"] == 0 for m in unread)}


def register(ws: Workspace, seat: Seat, agent_id: str | None = None, role: str | None = None,
             name: str | None = None, group: str | None = None,
             model: str | None = None) -> dict:
    """Register (or update the profile of) the agent this session acts as, fixing it."""
    agent_id = agent_id or seat.identity
    if not agent_id:
        raise InvalidInput("give agent_id: the id this session will act as (like 'worker-1')")
    if seat.identity is not None and seat.identity != agent_id:
        seat.claim(agent_id)  # raises: the identity is fixed
    ws.refresh()
    try:
        known = agents.show(ws, agent_id)["registered"]
    except NotFound:
        known = False
    if not known:
        result = agents.register(ws, agent_id, agent_id, role=role or DEFAULT_ROLE, name=name,
                                 group=group, model=model)
    elif any(v is not None for v in (role, name, group, model)):
        result = agents.register(ws, agent_id, agent_id, role=role, name=name, group=group,
                                 model=model, update=True)
    else:
        result = agents.show(ws, agent_id)
    seat.claim(agent_id)
    return {"identity": agent_id, "agent": result}


# -- mail -----------------------------------------------------------------------

def send(ws: Workspace, me: str, to: list[str], subject: str, body: str, *,
         priority: int | None = None, type_: str | None = None, action: str = "none",
         reply_to: str | None = None) -> dict:
    return mail.send(ws, me, to, subject, body, priority=priority, type_=type_, action=action,
                     reply_to=reply_to)


def reply(ws: Workspace, me: str, message_id: str, body: str, subject: str | None = None,
          action: str = "none") -> dict:
    return mail.reply(ws, me, message_id, body, subject=subject, action=action)


def inbox(ws: Workspace, me: str, session: str | None, *, unread_only: bool = False,
          sender: str | None = None, limit: int = 20) -> dict:
    found = mail.inbox(ws, me, session=session, unread=unread_only, sender=sender,
                       limit=max(0, limit))
    return {"identity": me, "count": len(found), "messages": [brief(m) for m in found]}


def read(ws: Workspace, me: str, session: str | None, message_id: str) -> dict:
    return mail.read(ws, me, message_id, session=session)


def ack(ws: Workspace, me: str, session: str | None, message_ids: list[str]) -> dict:
    result = mail.ack(ws, me, message_ids, session=session)
    if result["errors"] and not result["acknowledged"]:
        raise InvalidInput("; ".join(f"{e['id']}: {e['error']}" for e in result["errors"]))
    return result


def wait(ws: Workspace, me: str, session: str | None, seconds: float,
         stop: threading.Event | None = None) -> dict:
    """Block until mail this session has not been shown arrives, or ``seconds`` pass;
    return that new mail (the rest of the inbox was shown before)."""
    shown: set[str] = set()
    if session:
        ws.refresh()
        shown = mail.sessions(ws).seen(session, me, [m["id"] for m in mail.open_mail(ws, me)])
    found = [m for m in wake.wait_inbox(ws, me, seconds, session=session, stop=stop)
             if m["id"] not in shown]
    return {"identity": me, "timed_out": not found, "count": len(found),
            "messages": [brief(m) for m in found]}


def thread(ws: Workspace, message_id: str) -> dict:
    messages = mail.show(ws, message_id, thread=True)
    return {"thread_id": messages[0]["thread_id"] if messages else None, "messages": messages}


# -- channels, tasks, status ----------------------------------------------------------

def channel_post(ws: Workspace, me: str, channel: str, body: str,
                 subject: str | None = None) -> dict:
    return channels.post(ws, me, channel, body, subject)


def channel_read(ws: Workspace, channel: str | None = None, limit: int = 20) -> dict:
    if not channel:
        return {"channels": [{k: c[k] for k in ("name", "description", "messages",
                                                 "last_post_at")}
                             for c in channels.list_channels(ws)]}
    return channels.read(ws, channel, limit)


def task_list(ws: Workspace, me: str, status_: str | None = None, mine: bool = False,
              limit: int = 50) -> dict:
    rows = list(tasks.listing(ws, [status_] if status_ else None, me if mine else None,
                              limit=limit))
    return {"count": len(rows), "tasks": rows}


def task_create(ws: Workspace, me: str, title: str, description: str = "",
                priority: str = tasks.DEFAULT_PRIORITY, assign: str | None = None,
                parent: str | None = None, status_: str = tasks.DEFAULT_STATUS) -> dict:
    return tasks.create(ws, me, title, description, priority, assign, parent, status_)


def task_move(ws: Workspace, me: str, task_id: str, status_: str, version: int) -> dict:
    return tasks.move(ws, me, task_id, status_, version)


def task_comment(ws: Workspace, me: str, task_id: str, text: str) -> dict:
    return tasks.comment(ws, me, task_id, text)


def overview(ws: Workspace, me: str) -> dict:
    ws.refresh()
    return status.overview(ws, me)
