"""The arrivals ledger: which synced messages already fired ``on_message`` here.

Unlike the index this is *not* a cache: it records side effects (hooks that
ran), so it lives in its own small file next to the index,
``<common git dir>/beadsmail/arrivals.sqlite3``, which ``bd index rebuild``
never touches. It holds:

- ``notified``: ids of messages whose arrival hook was fired (insert-once), so
  a message fires at most once per clone, across syncs, plain ``git fetch``
  followed by a read, and index rebuilds;
- ``examined``: per segment of another replica, the blob ``bd sync`` last looked
  at for arrivals, so each sync reads only the bytes appended since, and a
  first sync treats what the clone already had as history;
- ``local_actors``: identities that wrote records from this replica (found
  incrementally by clock, since a replica's own records only get higher clocks).

The recipient queries at the end run on the index connection and address mail
exactly as inboxes do (``index.mail.reach``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from beadsmail.index import BUSY_SECONDS

DDL = """
CREATE TABLE IF NOT EXISTS notified (id TEXT PRIMARY KEY, at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS examined (path TEXT PRIMARY KEY, blob TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS local_actors (name TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class Ledger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
        self.conn.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        self.conn.execute("PRAGMA journal_mode=WAL")
        for statement in DDL.split(";"):
            if statement.strip():
                self.conn.execute(statement)

    def close(self) -> None:
        self.conn.close()

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def started(self) -> bool:
        return self.meta("started") is not None

    def examined(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT path, blob FROM examined"))

    def record(self, head: str | None, segments: dict[str, str],
               notify: Iterable[str], at: str) -> list[str]:
        """Store what was examined and mark messages notified; return the ids new to the ledger."""
        fresh = []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for message_id in notify:
                cur = self.conn.execute("INSERT OR IGNORE INTO notified VALUES (?, ?)",
                                        (message_id, at))
                if cur.rowcount:
                    fresh.append(message_id)
            self.conn.executemany("INSERT OR REPLACE INTO examined VALUES (?, ?)",
                                  segments.items())
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (head or "",))
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('started', ?)", (at,))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return fresh

    def is_notified(self, message_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM notified WHERE id=?",
                                 (message_id,)).fetchone() is not None

    def notified_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM notified").fetchone()[0]

    def local_actors(self, index_conn: sqlite3.Connection, replica: str) -> set[str]:
        """Identities that wrote from this replica (records and agent registrations)."""
        since = int(self.meta("actors_clock") or 0)
        top = index_conn.execute("SELECT coalesce(max(clock), 0) FROM records").fetchone()[0]
        if top > since:
            names = {a for (a,) in index_conn.execute(
                "SELECT DISTINCT actor FROM records WHERE clock > ? AND replica = ?",
                (since, replica))}
            names |= {r for (r,) in index_conn.execute(
                "SELECT json_extract(data, '$.agent') FROM records WHERE kind = 'agent' "
                "AND clock > ? AND replica = ? AND json_extract(data, '$.op') = 'register'",
                (since, replica))}
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT OR IGNORE INTO local_actors VALUES (?)",
                                  [(n,) for n in names if n])
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('actors_clock', ?)", (str(top),))
            self.conn.execute("COMMIT")
        return {n for (n,) in self.conn.execute("SELECT name FROM local_actors")}


def reach_map(index_conn: sqlite3.Connection, identities: set[str]) -> dict[str, set[str]]:
    """Per local identity, the targets that reach it (itself, ``*``, ``@group``, ``#channel``)."""
    from beadsmail.index import mail

    return {me: {me, *mail.reach(index_conn, me)} for me in identities}


def reached(message: dict, reach: dict[str, set[str]]) -> set[str]:
    """The local identities a message is addressed to, as their inboxes would show it."""
    targets = {t for t in message.get("to", ()) if isinstance(t, str)}
    sender = message.get("from")
    return {me for me, mine in reach.items()
            if me in targets or (me != sender and targets & mine)}


def is_deleted(index_conn: sqlite3.Connection, message_id: str) -> bool:
    return index_conn.execute("SELECT 1 FROM deleted WHERE id = ?",
                              (message_id,)).fetchone() is not None
