"""The server's delivery order: every message in the order the server saw it.

Records are ordered by ``(clock, id)`` in the store, but a message fetched from
another clone may carry a smaller clock than one already delivered, so that
order cannot serve as a resume cursor. The server keeps its own arrival order
instead: an append-only list of message ids, persisted one id a line in
``<common git dir>/beadsmail/serve-stream`` (local state, never committed), and
extended at start-up with the messages that arrived while it was down (in
``(clock, id)`` order). A connection follows the stream from a position; a
client that saw message X has seen everything before X that was for it, so
resuming after X loses nothing and repeats nothing, across server restarts too.

For each id the stream keeps what deciding the audience needs (sender and
targets); full records live in a small cache and are otherwise read from the
index. Per-agent cursors (the last message pushed to each agent) are kept in
``serve-cursors.json``, so an agent that reconnects without naming an id still
gets exactly what was queued for it while it was away.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import OrderedDict
from pathlib import Path

from beadsmail.records import ID_RE, sender_group

CACHE = 4096


class Stream:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "serve-stream"
        self.cursor_path = Path(state_dir) / "serve-cursors.json"
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self.meta: dict[str, tuple[str, tuple[str, ...], str]] = {}  # sender, targets, type
        self.groups: dict[str, str | None] = {}  # the sender's group (the log's ?group=)
        self.cache: OrderedDict[str, dict] = OrderedDict()
        self.texts: dict[str, str] = {}  # the JSON of cached records, made when first pushed
        self.cursors: dict[str, str] = {}
        self._dirty = False
        self._changed = asyncio.Event()
        self._fh = None

    # -- loading -------------------------------------------------------------

    def load(self, messages: list[dict]) -> None:
        """Read the persisted order, then append ``messages`` not in it (in the given order)."""
        known: list[str] = []
        try:
            known = [line.strip() for line in self.path.read_text("ascii").splitlines()]
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        by_id = {m["id"]: m for m in messages}
        for mid in known:
            if ID_RE.match(mid) and mid not in self.pos:  # a deleted message keeps its place, empty
                self._add(by_id.get(mid) or {"id": mid, "from": "", "to": ()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", encoding="ascii") as fh:  # rewrite: drops a torn last line
            fh.write("".join(i + "\n" for i in self.ids))
        self._fh = open(self.path, "a", encoding="ascii")  # noqa: SIM115 (kept open)
        self.extend(messages)
        try:
            cursors = json.loads(self.cursor_path.read_text("utf-8"))
            self.cursors = {k: v for k, v in cursors.items() if v in self.pos}
        except (FileNotFoundError, ValueError, AttributeError):
            self.cursors = {}

    def _add(self, record: dict) -> bool:
        mid = record["id"]
        if mid in self.pos:
            return False
        self.pos[mid] = len(self.ids)
        self.ids.append(mid)
        self.meta[mid] = (record["from"], tuple(record["to"]), record.get("type", ""))
        self.groups[mid] = sender_group(record)
        return True

    # -- growing -------------------------------------------------------------

    def extend(self, messages: list[dict]) -> list[dict]:
        """Append new messages; return the ones that were new; wake the followers."""
        new = [m for m in messages if self._add(m)]
        for m in new:
            self.remember(m)
        if new and self._fh is not None:
            self._fh.write("".join(m["id"] + "\n" for m in new))
            self._fh.flush()
        if new:
            self._changed.set()
            self._changed = asyncio.Event()
        return new

    def remember(self, record: dict) -> None:
        self.cache[record["id"]] = record
        self.cache.move_to_end(record["id"])
        while len(self.cache) > CACHE:
            gone, _ = self.cache.popitem(last=False)
            self.texts.pop(gone, None)

    async def wait_beyond(self, position: int) -> None:
        """Return once the stream holds more than ``position`` ids."""
        while len(self.ids) <= position:
            await self._changed.wait()

    def forget(self, ids: set[str]) -> None:
        """Deleted messages: keep their place (positions stay valid), drop their content."""
        for mid in ids:
            self.cache.pop(mid, None)
            self.texts.pop(mid, None)
            if mid in self.meta:
                self.meta[mid] = ("", (), "")
                self.groups[mid] = None

    # -- cursors -------------------------------------------------------------

    def after(self, message_id: str) -> int | None:
        """The position just after ``message_id``, or None if the stream does not know it."""
        at = self.pos.get(message_id)
        return None if at is None else at + 1

    def delivered(self, agent: str, message_id: str) -> None:
        self.cursors[agent] = message_id
        self._dirty = True

    def save_cursors(self) -> None:
        if not self._dirty:
            return
        tmp = self.cursor_path.with_name(f"serve-cursors.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.cursors, sort_keys=True), "utf-8")
        os.replace(tmp, self.cursor_path)
        self._dirty = False

    def close(self) -> None:
        self.save_cursors()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
