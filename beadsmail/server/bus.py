"""The agent bus protocol: what a connected agent may send, and what each frame does.

A frame is one JSON object in a text frame. Message frames follow the bus spec
(``{"type", "content", "metadata", "to"?}``) plus the optional mail fields, and
become one ``message`` record written through ``mail.send`` as the connection's
agent, so the CLI and the socket store exactly the same thing. Without ``to`` a
message goes to the project's channel (``#project``). Control frames: ``ack``
(close messages), ``read`` (a read receipt) and ``ping``. ``ref`` is any short
value the client chooses; it comes back on the answer to that frame.
"""

from __future__ import annotations

from beadsmail import addressing, mail, permissions, records
from beadsmail.errors import BeadsError, InvalidInput, PermissionDenied
from beadsmail.server import security

MESSAGE_FIELDS = {"type", "content", "body", "subject", "to", "metadata", "context", "priority",
                  "replies_to", "reply_to", "action_requested", "ephemeral", "ref", "from"}
CONTROL = {"ack": {"type", "ids", "id", "ref"}, "read": {"type", "id", "ref"},
           "ping": {"type", "ref"}}
SUBJECT_CHARS = 80


def error_frame(exc: BaseException, ref=None) -> dict:
    """The answer to a frame that failed: the CLI's JSON error object, with ``ref``."""
    if isinstance(exc, BeadsError):
        err = {"type": exc.code, "message": exc.message, **exc.details}
    else:
        err = {"type": "error", "message": f"internal error: {exc.__class__.__name__}"}
    return {"type": "error", "ref": ref, "error": err}


def parse(text: str, max_bytes: int, max_depth: int = 32) -> dict:
    """A frame as a dict; InvalidInput saying what is wrong otherwise (nesting deeper than
    ``max_depth`` is refused before parsing)."""
    if len(text) > max_bytes:
        raise InvalidInput(f"frame of {len(text)} characters is over the {max_bytes}-byte limit")
    frame = security.loads(text, max_depth, "frame")
    if not isinstance(frame, dict):
        raise InvalidInput("a frame must be a JSON object like {\"type\": \"status\", "
                           "\"content\": \"...\"}")
    ref = frame.get("ref")
    if ref is not None and not (isinstance(ref, str | int) and len(str(ref)) <= 100):
        raise InvalidInput("'ref' must be a string or number of at most 100 characters")
    return frame


def _known(frame: dict, allowed: set[str]) -> None:
    unknown = sorted(set(frame) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(unknown)} in a {frame.get('type')!r} frame; allowed: "
                           f"{', '.join(sorted(allowed))}")


def message_args(agent: str, project: str, frame: dict) -> tuple[list[str], str, str, dict]:
    """The arguments of ``mail.send`` for a message frame."""
    _known(frame, MESSAGE_FIELDS)
    sender = frame.get("from")
    if sender is not None and sender != agent:
        raise PermissionDenied(f"this connection acts as {agent}; it cannot send as {sender!r}")
    content = frame.get("content", frame.get("body"))
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("the message has no text: put it in 'content'")
    to = frame.get("to", ["#" + project])
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not all(isinstance(t, str) for t in to):
        raise InvalidInput("'to' must be a recipient or a list of them (agent, #channel, "
                           "@group or *)")
    subject = frame.get("subject")
    if subject is None:
        subject = content.strip().splitlines()[0][:SUBJECT_CHARS]
    metadata = frame.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidInput("'metadata' must be a JSON object")
    options: dict = {"type_": frame["type"], "metadata": metadata,
                     "context": frame.get("context"),
                     "reply_to": frame.get("replies_to", frame.get("reply_to"))}
    for key, option in (("priority", "priority"), ("action_requested", "action"),
                        ("ephemeral", "ephemeral")):
        if key in frame:
            options[option] = frame[key]
    if "ephemeral" in options and not isinstance(options["ephemeral"], bool):
        raise InvalidInput("'ephemeral' must be true or false")
    if options["reply_to"] is not None and not isinstance(options["reply_to"], str):
        raise InvalidInput("'replies_to' must be a message id")
    return to, subject, content, options


def _ids(frame: dict) -> list[str]:
    ids = frame.get("ids", [frame["id"]] if "id" in frame else None)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("an 'ack' frame needs 'ids': a list of message ids (or 'id')")
    return ids


def control(ws, agent: str, frame: dict, reader=None) -> dict:
    """Carry out one control frame (on the store thread); return the answer frame.
    ``reader`` (``access.Reader``) decides which messages ``read`` may show."""
    kind, ref = frame["type"], frame.get("ref")
    _known(frame, CONTROL[kind])
    if kind == "ping":
        return {"type": "pong", "ref": ref}
    if kind == "ack":
        return {"type": "acked", "ref": ref, **mail.ack(ws, agent, _ids(frame))}
    if not isinstance(frame.get("id"), str):
        raise InvalidInput("a 'read' frame needs 'id': the message id")
    if reader is not None:
        reader.message(ws, frame["id"])
    return {"type": "read", "ref": ref, "message": mail.read(ws, agent, frame["id"])}


def kind_of(frame: dict) -> str:
    """"message" or "control"; InvalidInput for any other type."""
    kind = frame.get("type")
    if kind in mail.TYPES:
        return "message"
    if kind in CONTROL:
        return "control"
    allowed = ", ".join([*mail.TYPES, *CONTROL])
    raise InvalidInput(f"unknown frame type {kind!r}: use one of {allowed}")


def _compose(ws, agent: str, project: str, frame: dict, reader=None) -> dict:
    to, subject, content, options = message_args(agent, project, frame)
    reply_to = options.pop("reply_to")
    fields = mail.compose(ws, agent, to, subject, content, **options)
    resolve = reader.message if reader is not None else mail.resolve_message
    parent = resolve(ws, reply_to) if reply_to else None
    fields["id"] = records.new_id(ws.prefix)
    fields["thread_id"] = parent["thread_id"] if parent else fields["id"]
    fields["replies_to"] = parent["id"] if parent else None
    return fields


def send_many(ws, agent: str, project: str, frames: list[dict], reader=None) -> list[dict]:
    """Commit the message frames of one connection as one commit (store thread).

    Each frame is checked exactly as ``mail.send`` checks a message (fields,
    parent, the ``mail.send`` capability and ``addressing.check_send`` under the
    lock); a frame that fails gets its own error answer and the rest are stored.
    Hooks run after the commit, once per message (event ``send`` or ``reply``).
    A parent (``reply_to``) must be a message ``reader`` may read.
    """
    answers: list[dict | None] = [None] * len(frames)
    fields_of: dict[int, dict] = {}
    ws.refresh()
    for i, frame in enumerate(frames):
        try:
            fields_of[i] = _compose(ws, agent, project, frame, reader)
        except BeadsError as exc:
            answers[i] = error_frame(exc, frame.get("ref"))
    warnings: dict[int, list[str]] = {}
    dead: dict[int, list[dict]] = {}
    items: list = []   # filled by the check, read by Workspace.write after it
    order: list[int] = []

    def check(index) -> None:
        default_role = ws.config["agents"]["default_role"]
        order.clear()
        for i, fields in fields_of.items():
            try:
                permissions.require(index, agent, "mail.send", default_role)
                warnings[i], dead[i] = addressing.check_send(index, ws.config, agent,
                                                              fields["to"])
            except BeadsError as exc:
                answers[i] = error_frame(exc, frames[i].get("ref"))
                continue
            order.append(i)
        if not order:
            raise _NothingToWrite()
        items[:] = [("message", fields_of[i]) for i in order]

    try:
        written = ws.write(agent, items, f"mail: {agent} sends {len(fields_of)} message"
                           f"{'s' if len(fields_of) != 1 else ''} over the bus", check=check)
    except _NothingToWrite:
        return [a for a in answers if a is not None]
    for i, record in zip(order, written.records, strict=True):
        answers[i] = _sent(ws, frames[i], record, warnings.get(i, []) + written.warnings,
                           dead.get(i, []))
    return [a for a in answers if a is not None]


def _sent(ws, frame: dict, record: dict, warnings: list[str], dead: list[dict]) -> dict:
    """Run the ``on_message`` hook for a stored message; the ``sent`` answer to its frame."""
    event = "reply" if record["replies_to"] else "send"
    warnings = warnings + ws.hook_runner().run(ws.loc.worktree, "on_message", record, event)
    return {"type": "sent", "ref": frame.get("ref"), "id": record["id"],
            "message": mail.view(record), "warnings": warnings, "dead_letters": dead}


class _NothingToWrite(Exception):
    """Every frame of a batch was refused by the checks: write nothing."""
