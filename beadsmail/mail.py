"""Mail: send, reply, inbox, read, ack, show, delete (the domain API; see ``cleanup``, ``wake``).

A message is one immutable record however many recipients it has. Each
recipient's state is a ``receipt`` record (delivered < read < acked, folded
forward-only), so one reader never consumes a broadcast for the others.
Recipients are agent ids, ``#channel``, ``@group`` or ``*``; they are resolved
when mail is listed (``index.mail``), so joining a channel later still shows
what was posted to it. Listing never writes: only ``read`` (a read receipt,
unless peeking) and ``ack`` do. Functions return plain values, never print.

Message types and their default priorities (0 urgent ... 4 lowest) are in
``TYPES``. Without ``--type`` a message is a plain ``request`` at priority 2;
naming a type applies its default; ``--urgent`` sets 0; ``--priority`` wins.
"""

from __future__ import annotations

import json

from beadsmail import records
from beadsmail.compat import beads
from beadsmail.errors import InvalidInput, NotFound
from beadsmail.index import copies
from beadsmail.index import mail as mail_index
from beadsmail.index.sessions import Sessions
from beadsmail.signing import provenance
from beadsmail.workspace import Workspace

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    from typing import Any

TYPES: dict[str, int] = {
    "urgent": 0,
    "guidance": 1, "request": 1, "query": 1, "coordination": 1,
    "response": 2, "completion": 2, "discovery": 2, "broadcast": 2,
    "status": 3, "notification": 3,
    "heartbeat": 4,
}
DEFAULT_TYPE = "request"
DEFAULT_PRIORITY = 2
REPLY_TYPE = "response"
ACTIONS = ("none", "acknowledge", "respond", "execute")
MAX_SUBJECT = 500
MAX_RECIPIENTS = 100
VIEW_FIELDS = ("id", "from", "to", "subject", "body", "priority", "type", "thread_id", "replies_to",
               "ephemeral", "context", "metadata", "action_requested", "created_at")


# -- inputs ---------------------------------------------------------------------

def priority_for(type_: str | None, urgent: bool = False, priority: int | None = None) -> int:
    """``--priority`` wins over ``--urgent``, which wins over the type's default (else 2)."""
    if priority is not None:
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 4:
            raise InvalidInput(f"priority {priority!r} is out of range: use 0 (urgent) to 4 (lowest)")
        return priority
    if urgent:
        return 0
    return TYPES[type_] if type_ else DEFAULT_PRIORITY


def _utf8(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid UTF-8 text; re-encode it as UTF-8") from None
    return text


def check_subject(subject: str | None) -> str:
    subject = _utf8(subject or "", "the subject").strip()
    if not subject:
        raise InvalidInput("the subject is empty: give one with -s/--subject")
    if any(ord(c) < 32 and c != "\t" for c in subject):
        raise InvalidInput("the subject must be one line of text (no newlines or control characters)")
    if len(subject) > MAX_SUBJECT:
        raise InvalidInput(f"the subject has {len(subject)} characters; the limit is {MAX_SUBJECT}")
    return subject


def check_body(body: str | None, max_bytes: int) -> str:
    body = _utf8(body or "", "the body")
    if not body.strip():
        raise InvalidInput("the body is empty: give one with -m/--body (or -m - to read stdin)")
    size = len(body.encode("utf-8"))
    if size > max_bytes:
        raise InvalidInput(f"the body is {size} bytes; the limit is {max_bytes} (mail.max_body): "
                           "shorten it or put the details in a file and send its path")
    return body


def check_recipients(to: list[str]) -> list[str]:
    out: list[str] = []
    for raw in to:
        target = _utf8(raw, "a recipient").strip()
        if not _valid_target(target):
            raise InvalidInput(
                f"invalid recipient {target!r}: use an agent id (letters, digits, '.', '_', '-'), "
                "#channel (lowercase), @group or *")
        if target not in out:
            out.append(target)
    if not out:
        raise InvalidInput("no recipient: name at least one agent, #channel, @group or *")
    if len(out) > MAX_RECIPIENTS:
        raise InvalidInput(f"{len(out)} recipients; the limit is {MAX_RECIPIENTS}: use a "
                           "#channel or @group instead")
    return out


def _valid_target(target: str) -> bool:
    if target == "*":
        return True
    if target[:1] == "#":
        name = target[1:]
        return bool(name) and name == name.lower() and bool(records.IDENTITY_RE.match(name))
    name = target[1:] if target[:1] == "@" else target
    return bool(records.IDENTITY_RE.match(name))


def parse_json(text: str | None, what: str, kinds: tuple[type, ...]) -> Any:
    """Parse a ``--context``/``--metadata`` argument; None stays None."""
    if text is None:
        return None
    try:
        value = json.loads(_utf8(text, what))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON ({exc.msg} at column {exc.colno}); "
                           "quote it like '{\"key\": \"value\"}'") from None
    if not isinstance(value, kinds):
        names = " or ".join(sorted({"object" if k is dict else "array" if k is list else "string"
                                    for k in kinds}))
        raise InvalidInput(f"{what} must be a JSON {names}")
    return value


def compose(ws: Workspace, sender: str, to: list[str], subject: str, body: str, *,
            urgent: bool = False, priority: int | None = None, type_: str | None = None,
            ephemeral: bool = True, context: Any = None, metadata: dict | None = None,
            action: str = "none") -> dict:
    """Validated message fields (without id, thread and parent)."""
    if type_ is not None and type_ not in TYPES:
        raise InvalidInput(f"unknown message type {type_!r}: use one of {', '.join(TYPES)}")
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    return {
        "from": records.check_identity(sender), "to": check_recipients(to),
        "subject": check_subject(subject),
        "body": check_body(body, int(ws.config["mail"]["max_body"])),
        "priority": priority_for(type_, urgent, priority), "type": type_ or DEFAULT_TYPE,
        "ephemeral": bool(ephemeral), "context": context, "metadata": metadata or {},
        "action_requested": action,
    }


# -- views ----------------------------------------------------------------------

def view(record: dict, state: int | None = None, read_at: str | None = None) -> dict:
    """A message as commands show it; with my state when it is addressed to me."""
    out = {key: record.get(key) for key in VIEW_FIELDS}
    out["sender_group"] = records.sender_group(record)
    out.update(beads.fields(record))  # (beads' names: title, assignee, sender, status ...)
    out.update(provenance(record))
    if state is not None:
        out["state"] = mail_index.STATE_NAMES[state] if state >= 2 else "unread"
        out["status"] = "closed" if state >= 3 else "open"
        out["read_at"] = read_at
    return out


def sessions(ws: Workspace) -> Sessions:
    """Per-session seen marks, beside the index (a rebuild keeps them)."""
    return Sessions(ws.loc.state_dir / "sessions.sqlite3")


def resolve_message(ws: Workspace, token: str) -> dict:
    """The stored message an id or unique prefix names (deleted ones are not found)."""
    mid = ws.index.resolve(_utf8(token, "the id"), ws.prefix, kinds=("message",), what="message")
    found = mail_index.message(ws.index.conn, mid)
    if found is None:
        by = mail_index.deleted_by(ws.index.conn, mid)
        raise NotFound(f"message {mid} was deleted" + (f" (by {by})" if by else "")
                       + "; list current mail with 'bd mail inbox'")
    return found


# -- commands -------------------------------------------------------------------

def send(ws: Workspace, sender: str, to: list[str], subject: str, body: str, *,
         reply_to: str | None = None, strict: bool | None = None, **options: Any) -> dict:
    """Store one message for every recipient; run the ``on_message`` hook (event send/reply).
    The result holds the ``warnings`` and the ``dead_letters`` the send made; ``strict``
    (default: config ``mail.strict``) refuses a send that would make dead letters."""
    fields = compose(ws, sender, to, subject, body, **options)
    ws.refresh()
    parent = resolve_message(ws, reply_to) if reply_to else None
    fields["id"] = records.new_id(ws.prefix)
    fields["thread_id"] = parent["thread_id"] if parent else fields["id"]
    fields["replies_to"] = parent["id"] if parent else None
    return _store(ws, sender, fields, "reply" if parent else "send", strict)


def reply(ws: Workspace, sender: str, token: str, body: str, *, subject: str | None = None,
          type_: str | None = None, strict: bool | None = None, **options: Any) -> dict:
    """Answer a message: to its sender (to its recipients when I sent it), ``Re:`` subject,
    ``replies_to`` = the parent, ``thread_id`` = the root, ephemeral like the parent."""
    ws.refresh()
    parent = resolve_message(ws, token)
    to = parent["to"] if parent["from"] == sender else [parent["from"]]
    if subject is None:
        subject = parent["subject"]
        if not subject.lower().startswith("re:"):
            subject = ("Re: " + subject)[:MAX_SUBJECT]
    options.setdefault("ephemeral", parent["ephemeral"])
    fields = compose(ws, sender, to, subject, body, type_=type_ or REPLY_TYPE, **options)
    fields["id"] = records.new_id(ws.prefix)
    fields["thread_id"] = parent["thread_id"]
    fields["replies_to"] = parent["id"]
    return _store(ws, sender, fields, "reply", strict)


def _store(ws: Workspace, sender: str, fields: dict, event: str, strict: bool | None) -> dict:
    from beadsmail import addressing, permissions

    warnings: list[str] = []
    dead: list[dict] = []

    def check(index) -> None:
        permissions.require(index, sender, "mail.send", ws.config["agents"]["default_role"])
        found = addressing.check_send(index, ws.config, sender, fields["to"], strict)
        warnings.extend(found[0])
        dead.extend(found[1])

    written = ws.write(sender, [("message", fields)],
                       f"mail: {sender} -> {', '.join(fields['to'])}: "
                       + " ".join(fields["subject"].split())[:100], check=check)
    record = written.records[0]
    warnings += written.warnings
    warnings += ws.hook_runner().run(ws.loc.worktree, "on_message", record, event)
    return {**view(record), "warnings": warnings, "dead_letters": dead}


def inbox(ws: Workspace, me: str, *, session: str | None = None, **filters: Any) -> list[dict]:
    """Open mail addressed to me, urgent first then newest. Never writes to the store;
    with a session, remembers locally that it was shown (so ``check`` stays quiet)."""
    ws.refresh()
    found = open_mail(ws, me, **filters)
    if session:
        sessions(ws).mark(session, me, [m["id"] for m in found])
    return found


def open_mail(ws: Workspace, me: str, *, sender: str | None = None, priority: int | None = None,
              type_: str | None = None, unread: bool = False, limit: int | None = None,
              group: str | None = None) -> list[dict]:
    """My open mail; with ``group``, scoped to that group (see ``groups``)."""
    if priority is not None:
        priority_for(None, priority=priority)
    if type_ is not None and type_ not in TYPES:
        raise InvalidInput(f"unknown message type {type_!r}: use one of {', '.join(TYPES)}")
    if limit is not None and limit < 0:
        raise InvalidInput(f"--limit {limit} is negative: give 0 (no limit) or more")
    conn = ws.index.conn
    if group is not None:
        from beadsmail import groups

        groups.require(conn, group)
    rows = mail_index.inbox(conn, me, mail_index.reach(conn, me), sender=sender, priority=priority,
                            type_=type_, unread=unread, limit=limit, group=group)
    return [view(record, state, read_at) for record, state, read_at in rows]


def read(ws: Workspace, me: str, token: str, *, peek: bool = False,
         session: str | None = None) -> dict:
    """One message in full. Records a read receipt for me unless ``peek`` (never an ack)."""
    ws.refresh()
    record = resolve_message(ws, token)
    conn = ws.index.conn
    mine = mail_index.addressed_to(conn, record["id"], me, mail_index.reach(conn, me))
    state = mail_index.state(conn, record["id"], me) if mine else None
    if mine and not peek and state is not None and state < 2:
        ws.write(me, [("receipt", {"message": record["id"], "recipient": me, "state": "read",
                                   "session": session})], f"mail: {me} read {record['id']}")
        state = 2
    if mine and session:
        sessions(ws).mark(session, me, [record["id"]])
    receipts = mail_index.receipts(conn, record["id"])
    mine_receipt = next((r for r in receipts if r["recipient"] == me), None)
    out = view(record, state, mine_receipt["read_at"] if mine_receipt else None)
    out["receipts"] = receipts
    out["flags"] = copies.flags(conn, [record["id"]]).get(record["id"], [])
    return out


def ack(ws: Workspace, me: str, tokens: list[str], *, all_: bool = False,
        session: str | None = None) -> dict:
    """Close messages for me: ``{"acknowledged": [ids], "errors": [{"id", "error"}]}``."""
    from beadsmail.errors import BeadsError

    if all_ and tokens:
        raise InvalidInput("give message ids or --all, not both")
    if not all_ and not tokens:
        raise InvalidInput("no message to acknowledge: give ids (or --all)")
    ws.refresh()
    conn = ws.index.conn
    targets = mail_index.reach(conn, me)
    if all_:
        tokens = [m["id"] for m, _, _ in mail_index.inbox(conn, me, targets)]
    done: list[str] = []
    todo: list[str] = []
    errors: list[dict] = []
    for token in tokens:
        try:
            record = resolve_message(ws, token)
            if not mail_index.addressed_to(conn, record["id"], me, targets):
                raise InvalidInput(f"{record['id']} is not addressed to {me}; only its "
                                   "recipients can acknowledge it")
        except BeadsError as exc:
            errors.append({"id": token, "error": exc.message})
            continue
        if record["id"] in done or record["id"] in todo:
            continue
        (done if mail_index.state(conn, record["id"], me) >= 3 else todo).append(record["id"])
    if todo:
        ws.write(me, [("receipt", {"message": mid, "recipient": me, "state": "acked",
                                   "session": session}) for mid in todo],
                 f"mail: {me} acked {len(todo)} message{'s' if len(todo) != 1 else ''}")
    return {"acknowledged": done + todo, "errors": errors}


def show(ws: Workspace, token: str, *, thread: bool = False) -> dict | list[dict]:
    """Any record by id or prefix; with ``thread``, the whole conversation in time order."""
    ws.refresh()
    index = ws.index
    rid = index.resolve(_utf8(token, "the id"), ws.prefix)
    by = mail_index.deleted_by(index.conn, rid)
    if by:
        raise NotFound(f"{rid} was deleted (by {by})")
    record = index.record(rid)
    assert record is not None
    if not thread:
        if record["kind"] == "message":
            record = {**record, "receipts": mail_index.receipts(index.conn, rid)}
        return {**record, **provenance(record),
                "flags": copies.flags(index.conn, [rid]).get(rid, [])}
    if record["kind"] != "message":
        raise InvalidInput(f"{rid} is a {record['kind']}, not a message: --thread shows "
                           "conversations")
    return [view(m) for m in mail_index.thread(index.conn, record["thread_id"])]


def delete(ws: Workspace, me: str, token: str, reason: str | None = None) -> dict:
    """Delete one message everywhere (a tombstone); needs the ``message.delete`` capability."""
    from beadsmail import permissions

    ws.refresh()
    record = resolve_message(ws, token)

    def check(index) -> None:
        permissions.require(index, me, "message.delete", ws.config["agents"]["default_role"])

    fields: dict[str, Any] = {"target": record["id"]}
    if reason:
        fields["reason"] = _utf8(reason, "the reason")[:500]
    written = ws.write(me, [("tombstone", fields)], f"mail: {me} deleted {record['id']}",
                       check=check)
    return {"deleted": record["id"], "tombstone": written.records[0]["id"],
            "warnings": written.warnings}


def whoami(ws: Workspace, me: str, source: str, session: str | None = None) -> dict:
    """Who ``bd`` acts as here, where that came from, and the role it acts with."""
    from beadsmail import permissions
    from beadsmail.index import registry

    ws.refresh()
    conn = ws.index.conn
    return {"identity": me, "source": source, "session": session,
            "registered": registry.registered_role(conn, me) is not None,
            "role": permissions.role_of(ws.index, me, ws.config["agents"]["default_role"]),
            "reached_by": [me, *mail_index.reach(conn, me)]}


def short_ids(ws: Workspace, ids: list[str]) -> dict[str, str]:
    """The shortest unique prefix of each id (at least 4 characters after the prefix)."""
    return mail_index.short_ids(ws.index.conn, ids)
