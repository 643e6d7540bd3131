"""Waking agents: wait for mail, stream it, or give a one-line notice of it.

Waiting never holds a lock or a git handle. It polls the store heads (the ref
files: a few small reads, no git library) every ``POLL`` seconds and refreshes
the index and queries only when they change, so an idle waiter costs next to
nothing and wakes within one poll of a commit, whichever worktree or process
made it. A plain ``git fetch`` that moves a remote-tracking copy wakes it too.

Per-session "seen" marks (``index.sessions``) make reminders non-repeating:
``check`` announces only unread mail this session has not been shown, and marks
what it announced; ``inbox``, ``read`` and ``watch`` with a session mark what
they show.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from beadsmail import mail
from beadsmail.workspace import Workspace

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    from typing import Any

POLL = 0.05
NOTICE_LISTED = 3


def _changes(ws: Workspace, seconds: float | None, stop: Any = None) -> Iterator[bool]:
    """Yield once at once, then each time the store heads move; stop after ``seconds``
    (or as soon as ``stop``, a ``threading.Event``, is set: a waiter that was cancelled)."""
    from beadsmail.store import heads_stamp

    deadline = None if seconds is None else time.monotonic() + seconds
    last, stamp = None, None
    while True:
        now = heads_stamp(ws.loc.common, ws.ref)
        if now != stamp:  # only stat calls while nothing moves
            stamp = now
            heads = ws.heads()
            if heads != last:
                last = heads
                ws.refresh()
                yield True
        left = None if deadline is None else deadline - time.monotonic()
        if (left is not None and left <= 0) or (stop is not None and stop.is_set()):
            return
        if stop is not None:
            stop.wait(POLL if left is None else min(POLL, left))
        else:
            time.sleep(POLL if left is None else min(POLL, left))


def wait_inbox(ws: Workspace, me: str, seconds: float, *, session: str | None = None,
               stop: Any = None, **filters: Any) -> list[dict]:
    """The inbox as soon as it holds a message (one this session has not been shown, with a
    session); an empty list when ``seconds`` pass first (or ``stop`` is set)."""
    if seconds < 0:
        from beadsmail.errors import InvalidInput

        raise InvalidInput(f"--wait {seconds:g} is negative: give the seconds to wait")
    marks = mail.sessions(ws) if session else None
    for _ in _changes(ws, seconds, stop):
        found = mail.open_mail(ws, me, **filters)
        ids = [m["id"] for m in found]
        if marks is not None:
            if not set(ids) - marks.seen(session, me, ids):  # type: ignore[arg-type]
                continue
            marks.mark(session, me, ids)  # type: ignore[arg-type]
        if found:
            return found
    return []


def watch(ws: Workspace, me: str, *, session: str | None = None, seconds: float | None = None,
          ready: Any = None, **filters: Any) -> Iterator[dict]:
    """New mail for me as it arrives (oldest first), until ``seconds`` pass (or forever).
    ``ready()`` is called once what is already there is known: mail stored after it is new."""
    marks = mail.sessions(ws) if session else None
    known: set[str] | None = None
    for _ in _changes(ws, seconds):
        found = mail.open_mail(ws, me, **filters)
        if known is None:
            known = {m["id"] for m in found}
            if ready is not None:
                ready()
            continue
        fresh = sorted((m for m in found if m["id"] not in known),
                       key=lambda m: (m["created_at"], m["id"]))
        for message in fresh:
            known.add(message["id"])
            if marks is not None:
                marks.mark(session, me, [message["id"]])  # type: ignore[arg-type]
            yield message


def check(ws: Workspace, me: str, session: str | None = None) -> dict:
    """Unread mail for me not yet announced to this session, with a one-line ``notice``
    (empty when there is nothing new). Marks what it announces as seen."""
    ws.refresh()
    unread = mail.open_mail(ws, me, unread=True)
    if session and unread:
        marks = mail.sessions(ws)
        ids = [m["id"] for m in unread]
        seen = marks.seen(session, me, ids)
        unread = [m for m in unread if m["id"] not in seen]
        marks.mark(session, me, [m["id"] for m in unread])
    brief = [{"id": m["id"], "from": m["from"], "subject": m["subject"],
              "priority": m["priority"]} for m in unread]
    return {"identity": me, "session": session, "new": len(brief),
            "urgent": sum(1 for m in brief if m["priority"] == 0), "messages": brief,
            "notice": notice(ws, me, brief)}


def notice(ws: Workspace, me: str, brief: list[dict]) -> str:
    if not brief:
        return ""
    short = mail.short_ids(ws, [m["id"] for m in brief[:NOTICE_LISTED]])
    urgent = sum(1 for m in brief if m["priority"] == 0)
    items = [("[URGENT] " if m["priority"] == 0 else "") + f"\"{_clip(m['subject'])}\" from "
             f"{m['from']} ({short[m['id']]})" for m in brief[:NOTICE_LISTED]]
    more = len(brief) - len(items)
    count = f"{len(brief)} new message{'s' if len(brief) != 1 else ''}"
    return (f"bd: {count} for {me}" + (f" ({urgent} urgent)" if urgent else "") + ": "
            + "; ".join(items) + (f"; and {more} more" if more else "")
            + ". Read with 'bd mail read <id>', list with 'bd mail inbox'.")


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."
