"""The arrivals ledger: which messages from other clones this clone has accounted for.

Unlike the index this is *not* a cache: it records side effects (hooks that
ran), so it lives in its own small file next to the index,
``<common git dir>/beadsmail/arrivals.sqlite3``, which ``bd index rebuild``
never touches. It holds:

- ``seen``: the id of every message of another replica that this clone has
  accounted for, whether its hook fired, it was history at the first sync, or it
  was addressed to no one here. A message is an arrival only the first time its
  id enters ``seen``, so repeated lines, rebuilds, and the other side's cleanup
  or compaction (which rewrite segments, never ids) cannot make it new again;
- ``pending``: arrival hooks due and not run yet (a command's time for hooks ran
  out), run by the next sync; a row is deleted before its hook runs, so a hook
  never fires twice;
- ``meta``: the index generation and position (``Index.arrival``) examined last,
  so a sync reads only the records folded since; after a rebuild (another
  generation) it compares the index's message ids with ``seen`` instead;
- ``local_actors``: identities that wrote records from this replica (found
  incrementally by clock, since a replica's own records only get higher clocks).

Candidates come from the index, never from git: only records that passed the
checks of the fold can fire a hook, and with the fields the fold kept. The
queries that read the index attach this file to the index connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from beadsmail.index import BUSY_SECONDS

DDL = """
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notified (id TEXT PRIMARY KEY, at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    n INTEGER PRIMARY KEY, id TEXT NOT NULL, worktree TEXT NOT NULL, at TEXT NOT NULL,
    UNIQUE (id, worktree));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS local_actors (name TEXT PRIMARY KEY) WITHOUT ROWID;
"""
FOREIGN = "kind = 'message' AND replica != ?"


@contextmanager
def _attached(index_conn: sqlite3.Connection, path: Path) -> Iterator[None]:
    index_conn.execute("ATTACH DATABASE ? AS ledger", (str(path),))
    try:
        yield
    finally:
        index_conn.execute("DETACH DATABASE ledger")


def generation(index) -> str:
    """A token naming the index file in use: a rebuild makes a new one (new positions)."""
    token = index.kv_get("arrivals.generation")
    if token is None:
        token = os.urandom(8).hex()
        index.kv_set("arrivals.generation", token)
    return token


class Ledger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
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
        """Whether this clone's first sync has run (in the ledger's current format)."""
        return self.meta("generation") is not None

    def baseline(self, index, replica: str, at: str) -> None:
        """First sync: every message of another replica the index holds is history."""
        with _attached(index.conn, self.path):
            index.conn.execute(f"INSERT OR IGNORE INTO ledger.seen SELECT id FROM records "
                               f"WHERE {FOREIGN}", (replica,))
        self._mark(generation(index), index.arrival(), at)

    def new_messages(self, index, replica: str) -> list[dict]:
        """Messages of other replicas folded since the last look and not seen before, in
        fold order (not yet marked seen: ``take`` does that)."""
        token, top = generation(index), index.arrival()
        self._position = (token, top)
        if token == self.meta("generation"):
            since = int(self.meta("position") or 0)
            if since >= top:
                return []
            found = [json.loads(d) for (d,) in index.conn.execute(
                f"SELECT data FROM records WHERE rowid > ? AND {FOREIGN} ORDER BY rowid",
                (since, replica))]
            known = self._seen([m["id"] for m in found])
            found = [m for m in found if m["id"] not in known]
        else:  # another index file: positions start afresh, compare ids instead
            with _attached(index.conn, self.path):
                rows = index.conn.execute(
                    f"SELECT data FROM records WHERE {FOREIGN} AND NOT EXISTS "
                    "(SELECT 1 FROM ledger.seen s WHERE s.id = records.id) ORDER BY rowid",
                    (replica,)).fetchall()
            found = [json.loads(d) for (d,) in rows]
        return found

    def _seen(self, ids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            known.update(i for (i,) in self.conn.execute(
                f"SELECT id FROM seen WHERE id IN ({','.join('?' * len(part))})", part))
        return known

    def take(self, seen: Iterable[str], due: Iterable[tuple[str, str]], at: str) -> list[str]:
        """Mark ``seen`` ids seen and queue ``due`` (id, worktree) hooks for those that were
        new; return the ids that were new (another sync may have taken some meanwhile)."""
        token, top = self._position
        fresh: list[str] = []
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for message_id in seen:
                if self.conn.execute("INSERT OR IGNORE INTO seen VALUES (?)",
                                     (message_id,)).rowcount:
                    fresh.append(message_id)
            new = set(fresh)
            for message_id, worktree in due:
                if message_id in new:
                    self.conn.execute("INSERT OR IGNORE INTO notified VALUES (?, ?)", (message_id, at))
                    self.conn.execute("INSERT OR IGNORE INTO pending (id, worktree, at) "
                                      "VALUES (?, ?, ?)", (message_id, worktree, at))
            self._set(token, top, at)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return fresh

    def pending(self) -> list[tuple[str, str]]:
        return list(self.conn.execute("SELECT id, worktree FROM pending ORDER BY n"))

    def claim(self, message_id: str, worktree: str) -> bool:
        """Take one pending hook to run now (False: another process took it)."""
        return bool(self.conn.execute("DELETE FROM pending WHERE id = ? AND worktree = ?",
                                      (message_id, worktree)).rowcount)

    def _mark(self, token: str, top: int, at: str) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self._set(token, top, at)
        self.conn.execute("COMMIT")

    def _set(self, token: str, top: int, at: str) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                              [("generation", token), ("position", str(top)), ("started", at)])

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
    """Whether a message is out of every view: deleted, purged, or a task board post whose
    move the fold did not apply (``index.tasks``). Such a message never "arrives"."""
    return index_conn.execute("SELECT 1 FROM messages WHERE id = ?",
                              (message_id,)).fetchone() is None
