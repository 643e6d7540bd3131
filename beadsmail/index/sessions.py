"""Per-session "seen" marks: which messages a session has already been shown.

Kept in ``sessions.sqlite3`` beside the index, not inside it: the index is a
cache that a rebuild throws away, while what a session was shown is local
history that must survive one (otherwise every reminder would repeat). It is
never committed or synced: a session is one agent process on this machine, so
the marks are plain rows keyed by (session, identity, message). Marks older
than ``KEEP_DAYS`` are dropped as new ones are written.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

KEEP_DAYS = 30
DDL = ("CREATE TABLE IF NOT EXISTS seen (session TEXT NOT NULL, identity TEXT NOT NULL, "
       "message_id TEXT NOT NULL, at TEXT NOT NULL, "
       "PRIMARY KEY (session, identity, message_id)) WITHOUT ROWID",
       "CREATE INDEX IF NOT EXISTS seen_at ON seen(at)")


class Sessions:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            try:
                conn.execute("SELECT 1 FROM seen LIMIT 1")
            except sqlite3.OperationalError:
                conn.execute("PRAGMA journal_mode=WAL")
                for statement in DDL:
                    conn.execute(statement)
            self._conn = conn
        return self._conn

    def seen(self, session: str, identity: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` this session has been shown."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            found |= {r for (r,) in self.conn.execute(
                "SELECT message_id FROM seen WHERE session = ? AND identity = ? AND "
                f"message_id IN ({','.join('?' * len(chunk))})", [session, identity, *chunk])}
        return found

    def mark(self, session: str, identity: str, ids: list[str]) -> None:
        if not ids:
            return
        now = datetime.now(UTC)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?)",
                             [(session, identity, i, now.isoformat()) for i in ids])
            conn.execute("DELETE FROM seen WHERE at < ?",
                         ((now - timedelta(days=KEEP_DAYS)).isoformat(),))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
