"""Small builders shared by tests."""

from __future__ import annotations

from beadsmail.workspace import Workspace


def message_fields(sender: str = "alice", to: tuple[str, ...] = ("bob",), subject: str = "hello",
                   body: str = "hi", **extra) -> dict:
    fields = {"from": sender, "to": list(to), "subject": subject, "body": body, "priority": 2,
              "type": "request", "thread_id": "bd-0000000000000", "reply_to": None,
              "ephemeral": True, "metadata": {}, "action_requested": "none"}
    fields.update(extra)
    return fields


def write_message(ws: Workspace, sender: str = "alice", **kw) -> dict:
    written = ws.write(sender, [("message", message_fields(sender, **kw))],
                       f"mail: {sender} -> {','.join(kw.get('to', ('bob',)))}")
    return written.records[0]
