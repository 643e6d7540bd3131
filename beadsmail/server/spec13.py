"""Spec 13's agent bus on ``bd serve``: its frames in, its message objects out.

Spec 13 clients connect to the same endpoint as beadsmail's own protocol,
``/ws/agent/messages/{project_id}``, so both are served at once:

* a frame in may be Spec 13's ``{"type", "content", "agent_type", "metadata"}``:
  ``type`` defaults to ``status`` and ``agent_type`` is kept in the message's
  metadata (``normalize``);
* every message frame an agent receives carries Spec 13's columns at its top
  level next to beadsmail's ``{"type": "message", "queued", "message"}`` (``row``),
  so a Spec 13 client reads ``id``, ``sender_agent_id``, ``message_type``,
  ``content`` ... and a beadsmail client reads ``message`` as before;
* a connection without ``agent_id`` (Spec 13's frontend) is a log follower: it
  receives the project's recent messages and then each new one, as plain Spec 13
  message objects, and sends nothing (``serve_log``).

``delivered_at`` is the time of a message's first ``delivered`` receipt: the hub
records one when it pushes a message to a connected recipient.
"""

from __future__ import annotations

import json

from beadsmail.index import mail as mail_index

LOG_LIMIT = 100
COLUMNS = ("id", "project_id", "sender_agent_id", "sender_agent_type", "sender_session_id",
           "message_type", "content", "metadata", "delivered_at", "read_at", "created_at")


def normalize(frame: dict) -> dict:
    """A Spec 13 frame as a beadsmail message frame (frames of the richer protocol pass)."""
    if "type" not in frame and "content" in frame:
        frame["type"] = "status"
    if "agent_type" in frame or "session_id" in frame:
        metadata = frame.get("metadata", {})
        if isinstance(metadata, dict):
            extra = {k: frame.pop(k) for k in ("agent_type", "session_id") if k in frame}
            frame["metadata"] = {**metadata, **extra}
    return frame


def row(record: dict, project: str, delivered_at: str | None = None,
        read_at: str | None = None) -> dict:
    """A message as a row of Spec 13's ``agent_messages`` table."""
    meta = record.get("metadata") or {}
    return {"id": record["id"], "project_id": project, "sender_agent_id": record["from"],
            "sender_agent_type": meta.get("agent_type"),
            "sender_session_id": meta.get("session_id"), "message_type": record["type"],
            "content": record["body"], "metadata": meta, "delivered_at": delivered_at,
            "read_at": read_at, "created_at": record["created_at"]}


def columns_text(record: dict, project: str, delivered_at: str | None) -> str:
    """``row`` as JSON object members (no braces), to splice into a message frame."""
    text = json.dumps(row(record, project, delivered_at), ensure_ascii=False,
                      separators=(",", ":"))
    return text[1:-1]


def times(ws, ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """(delivered_at, read_at) of each message: its first receipts (store thread)."""
    return mail_index.first_receipts(ws.index.conn, ids)


def mark_delivered(ws, agent: str, ids: list[str]) -> None:
    """Record that ``ids`` reached ``agent`` (store thread): one commit for the batch,
    only for messages it has no receipt of yet."""
    conn = ws.index.conn
    fresh = [i for i in ids if mail_index.state(conn, i, agent) == 0]
    if fresh:
        ws.write(agent, [("receipt", {"message": i, "recipient": agent, "state": "delivered",
                                      "session": None}) for i in fresh],
                 f"serve: {len(fresh)} delivered to {agent}")


async def serve_log(hub, websocket, project: str, principal) -> None:
    """Spec 13's frontend: the project's log, then every new message of the project,
    until the client goes away (frames it sends are not read as messages)."""
    import asyncio

    reader = await hub.reader(principal)  # (what the caller's token lets it read)
    follow = asyncio.create_task(_follow_log(hub, websocket, project, reader))
    closed = asyncio.create_task(_until_closed(websocket))
    try:
        await asyncio.wait({follow, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (follow, closed):
            task.cancel()
        await asyncio.gather(follow, closed, return_exceptions=True)


async def _until_closed(websocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _follow_log(hub, websocket, project: str, reader) -> None:
    channel = "#" + project
    start = len(hub.stream.ids)
    recent = await hub.log({"channel": project, "limit": LOG_LIMIT}, reader)
    await _send_rows(hub, websocket, project, recent)
    pos = start
    while True:
        await hub.stream.wait_beyond(pos)
        end = len(hub.stream.ids)
        wanted = [mid for mid in hub.stream.ids[pos:end] if channel in hub.stream.meta[mid][1]
                  and reader.may_read(*hub.stream.meta[mid][:2])]
        await _send_rows(hub, websocket, project, await hub._records(wanted))
        pos = end


async def _send_rows(hub, websocket, project: str, records: list[dict]) -> None:
    if not records:
        return
    found = await hub.feed.call(times, [r["id"] for r in records])
    for record in records:
        delivered, read = found.get(record["id"], (None, None))
        await websocket.send_json(row(record, project, delivered, read))
