"""What a caller of ``bd serve`` may read: one rule for the HTTP API, the bus and the page.

A request whose identity a token decided is *scoped* (``security.Principal``): it
reads what its agent may read under the role matrix (``permissions``):

- messages it sent, and messages that reach it as its inbox does: addressed to it,
  to ``*``, to ``@<its group>`` or to a channel it is in;
- the channels it is in (``GET /api/channels/{name}``);
- everything that is not mail: tasks, the roster, channel names and members,
  file reservations.

An agent registered as a manager (``mail.read.others``) reads all mail. The
empty-roster rule (everyone acts as a manager while nobody is registered) does
not widen what a token reads (``permissions.registered_can``). A request without
a token on a loopback server is the local user, trusted as the CLI is: it reads
everything, whoever it names with ``X-Beads-Identity``.

Rules are per API operation (``RULES``): a check that runs on the store thread
before the domain function, and a filter on what that returns. An operation
without a rule is refused to scoped callers, so a new route never leaks by
default (a test asks every route for one). A message a scoped caller may not read
is "not found" (404): its existence is not confirmed. The watch feed and the
page's log use ``Reader.sees`` and ``Reader.may_read``, the same rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from beadsmail import channels, mail, permissions
from beadsmail.errors import NotFound, PermissionDenied
from beadsmail.index import mail as mail_index
from beadsmail.server.security import Principal

PUBLIC_KINDS = frozenset({"agent", "channel", "membership", "task", "task_event", "comment",
                          "reservation"})


class Reader:
    """What one caller may read; built on the store thread, asked anywhere."""

    __slots__ = ("identity", "everything", "reach")

    def __init__(self, identity: str, everything: bool, reach: frozenset[str] = frozenset()):
        self.identity = identity
        self.everything = everything
        self.reach = reach

    @classmethod
    def of(cls, ws, principal: Principal) -> Reader:
        """The reader for ``principal`` (store thread when the principal holds a token)."""
        if not principal.token:
            return cls(principal.identity, True)
        ws.refresh()
        if permissions.registered_can(ws.index, principal.identity, "mail.read.others"):
            return cls(principal.identity, True)
        reach = mail_index.reach(ws.index.conn, principal.identity)
        return cls(principal.identity, False, frozenset(reach))

    def may_read(self, sender: str, targets) -> bool:
        if self.everything or sender == self.identity:
            return True
        return self.identity in targets or not self.reach.isdisjoint(targets)

    def message(self, ws, token: str) -> dict:
        """The message ``token`` names, if I may read it; NotFound otherwise (store thread)."""
        if self.everything:
            return mail.resolve_message(ws, token)
        try:
            record = mail.resolve_message(ws, token)
        except NotFound:
            record = None
        if record is None or not self.may_read(record["from"], record["to"]):
            raise NotFound(f"no message {token[:40]!r} that {self.identity} may read; list "
                           "yours with GET /api/inbox")
        return record

    def channel(self, name: str) -> None:
        name = channels.normalize(name)
        if not self.everything and "#" + name not in self.reach:
            raise PermissionDenied(f"{self.identity} is not in #{name}, so its token cannot read "
                                   f"it; join it first (POST /api/channels/{name}/join)")

    def inbox(self, agent: str | None) -> None:
        if not self.everything and agent not in (None, self.identity):
            raise PermissionDenied(f"a token for {self.identity} reads only {self.identity}'s "
                                   "inbox; other inboxes need a manager's token")

    def sees(self, record: dict, meta: Callable[[str], tuple | None]) -> bool:
        """Whether a record of the watch feed is shown (``meta(id)`` = a message's
        ``(sender, targets, type)``, from the server's stream)."""
        if self.everything:
            return True
        kind = record.get("kind")
        if kind == "message":
            return self.may_read(record.get("from", ""), record.get("to") or ())
        if kind == "receipt":
            if record.get("recipient") == self.identity:
                return True
            found = meta(record.get("message", ""))
            return found is not None and self.may_read(found[0], found[1])
        return kind in PUBLIC_KINDS


# -- the rules of the API's operations ---------------------------------------------------

def _anyone(ws, reader: Reader, params: dict, body: Any) -> None:
    return None


def _message(ws, reader: Reader, params: dict, body: Any) -> None:
    reader.message(ws, params["id"])


def _parent(ws, reader: Reader, params: dict, body: Any) -> None:
    for key in ("replies_to", "reply_to"):
        if isinstance(body, dict) and isinstance(body.get(key), str):
            reader.message(ws, body[key])


def _inbox(ws, reader: Reader, params: dict, body: Any) -> None:
    reader.inbox(params.get("agent"))


def _channel(ws, reader: Reader, params: dict, body: Any) -> None:
    reader.channel(params["name"])


def _thread(reader: Reader, result: Any) -> Any:
    return [m for m in result if reader.may_read(m["from"], m["to"])]


def _found(reader: Reader, result: Any) -> Any:
    """Search hits: ``search`` scopes them by the caller's role already; this applies the
    token's rule on top (the empty-roster rule does not widen a token)."""
    return [h for h in result if h.get("kind") not in ("mail", "post")
            or reader.may_read(h["from"], h["to"])]


Check = Callable[[Any, Reader, dict, Any], None]
RULES: dict[str, tuple[Check, Callable[[Reader, Any], Any] | None]] = {
    "log": (_anyone, None),            # filtered by the hub with Reader.may_read
    "send": (_parent, None),
    "inbox": (_inbox, None),
    "show_message": (_message, None),
    "read": (_message, None),
    "ack_one": (_anyone, None),        # mail.ack refuses what is not addressed to the caller
    "ack": (_anyone, None),
    "reply": (_message, None),
    "thread": (_message, _thread),
    "channels": (_anyone, None),
    "channel_read": (_channel, None),
    "channel_post": (_anyone, None),
    "channel_join": (_anyone, None),
    "channel_leave": (_anyone, None),
    "agents": (_anyone, None),
    "agent": (_anyone, None),
    "status": (_anyone, None),
    "tasks": (_anyone, None),
    "board": (_anyone, None),
    "task_create": (_anyone, None),
    "task": (_anyone, None),
    "task_move": (_anyone, None),
    "task_assign": (_anyone, None),
    "task_comment": (_anyone, None),
    "search": (_anyone, _found),
    "reservations": (_anyone, None),   # who works where is for every agent to see
    "reserve": (_anyone, None),        # written as the token's agent
    "release": (_anyone, None),        # only the token's agent's own leases
}


def call(ws, fn: Callable, op: str, principal: Principal, params: dict, body: Any) -> Any:
    """Run an API operation's domain function for ``principal`` under its rule (store thread)."""
    if not principal.token:
        return fn(ws, principal.identity, params, body)
    rule = RULES.get(op)
    if rule is None:
        raise PermissionDenied(f"'{op}' is not open to agent tokens on this server")
    check, keep = rule
    reader = Reader.of(ws, principal)
    check(ws, reader, params, body)
    result = fn(ws, principal.identity, params, body)
    return keep(reader, result) if keep is not None else result
