"""beads' names for a message: the fields a beads message issue carries.

beads stores a message as an issue of type ``message``: ``title`` (the subject),
``description`` (the body), ``assignee`` (the recipient), ``sender``,
``priority`` (0-4), ``ephemeral``, ``replies_to`` and ``status`` (open until the
reader acknowledges it, then closed). Views and hook payloads carry them next to
beadsmail's own fields. beads' ``type`` ("message") would clash with the message
type beadsmail keeps in ``type``, so views name it ``issue_type``; a hook's stdin,
which is beads' interface alone, has ``type: "message"`` and the message type
in ``message_type``.
"""

from __future__ import annotations


def assignee(to: list[str]) -> str:
    """The recipient as one string: the only one, or all of them joined by commas."""
    return ",".join(to)


def fields(record: dict, status: str | None = None) -> dict:
    """beads' fields of a message record; ``status`` is the reader's (open/closed)."""
    return {"issue_type": "message", "title": record.get("subject"),
            "description": record.get("body"), "assignee": assignee(record.get("to") or []),
            "sender": record.get("from"), "status": status or "open"}


def hook_payload(record: dict) -> dict:
    """The JSON a ``on_message`` hook reads on stdin: the record, with beads' fields."""
    out = {**record, **fields(record)}
    del out["issue_type"]
    out["message_type"] = record.get("type")
    out["type"] = "message"
    return out
