"""The SQLite index: a cache of the store, rebuildable at any time (the only SQL).

One file, ``<common git dir>/beadsmail/index.sqlite3``, shared by all worktrees,
in WAL mode with a busy timeout. It remembers which commit of each store head it
has folded (``heads``) and how far into each segment file (``segments``: blob,
byte size, line count and a fingerprint of the last bytes folded), so a refresh
reads only appended bytes. Every record goes into ``records`` once (by id);
``bad_lines`` keeps lines that did not parse or validate, with file and line.

Domain state (messages, tasks, agents ...) is a fold of the records, defined in
the sibling modules. Each fold is written so that the result does not depend on
the order records arrive in: immutable rows are inserted once, per-recipient
states only move forward, last-writer-wins rows compare ``(clock, id)``, and
tasks are replayed from their events in ``(clock, id)`` order. So an index
maintained incrementally equals one rebuilt from scratch. A rebuild takes a
faster path to the same rows (``Index._load``): all records in one batch, their
indexes built once afterwards instead of updated row by row.

A schema version change or an unreadable file means: delete it and rebuild.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from beadsmail.errors import Ambiguous, InvalidInput, NotFound
from beadsmail.index import mail, registry, tasks

SCHEMA_VERSION = 11
# How long a process waits for another's index transaction: a full rebuild of a
# million records takes ~40 s here, and waiting beats failing.
BUSY_SECONDS = 120
DOMAINS = (mail, tasks, registry)

CORE_DDL = """
CREATE TABLE IF NOT EXISTS heads (ref TEXT PRIMARY KEY, commit_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    path TEXT PRIMARY KEY, blob TEXT NOT NULL, size INTEGER NOT NULL,
    lines INTEGER NOT NULL, tail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id TEXT NOT NULL, kind TEXT NOT NULL, clock INTEGER NOT NULL, actor TEXT NOT NULL,
    created_at TEXT NOT NULL, replica TEXT NOT NULL, path TEXT, line INTEGER,
    data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bad_lines (
    path TEXT NOT NULL, line INTEGER NOT NULL, error TEXT NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (path, line));
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kind_counts (kind TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""
# The indexes and triggers of ``records``, which a load into an empty index (``ingest(...,
# bulk=True)``) builds once after inserting the rows instead of row by row. The id index is
# a separate UNIQUE index (not a column constraint) so that it can be dropped for that.
RECORDS_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS records_id ON records(id);
CREATE INDEX IF NOT EXISTS records_clock ON records(clock);
CREATE INDEX IF NOT EXISTS records_kind ON records(kind, clock);
CREATE TRIGGER IF NOT EXISTS records_counted AFTER INSERT ON records BEGIN
    INSERT INTO kind_counts VALUES (new.kind, 1) ON CONFLICT (kind) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS records_uncounted AFTER DELETE ON records BEGIN
    UPDATE kind_counts SET n = n - 1 WHERE kind = old.kind;
END;
"""


def _statements(ddl: str) -> Iterator[str]:
    """Split a script into statements (``executescript`` would commit our transaction)."""
    pending = ""
    for part in ddl.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


class Index:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rebuilt = False
        try:
            self.conn = self._open()
        except sqlite3.DatabaseError:
            self.conn = self._recreate()

    # -- lifecycle -----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        conn.execute("PRAGMA synchronous=NORMAL")  # a cache: consistent after a crash is enough
        conn.execute("PRAGMA cache_size=-131072")
        # Reads use the file's pages in place instead of copying each into the page
        # cache: a cold process listing 10,000 tasks reads ~5 MB ~9 ms faster.
        conn.execute("PRAGMA mmap_size=268435456")
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = self._connect()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            conn.execute("SELECT count(*) FROM heads").fetchone()
            return conn
        if version != 0 or conn.execute(
                "SELECT count(*) FROM sqlite_master").fetchone()[0]:
            conn.close()
            return self._recreate()
        self._create(conn)
        return conn

    def _create(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                for ddl in (CORE_DDL, RECORDS_INDEXES, *(domain.DDL for domain in DOMAINS),
                            *(domain.QUERY_INDEXES for domain in DOMAINS)):
                    for statement in _statements(ddl):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.rebuilt = True

    def _recreate(self) -> sqlite3.Connection:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        conn = self._connect()
        self._create(conn)
        return conn

    def reset(self) -> None:
        """Forget everything (``bd index rebuild``); the next refresh folds from scratch."""
        self.conn.close()
        self.conn = self._recreate()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- fold bookkeeping ----------------------------------------------------

    def heads(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT ref, commit_id FROM heads"))

    def set_heads(self, heads: dict[str, str]) -> None:
        self.conn.execute("DELETE FROM heads")
        self.conn.executemany("INSERT INTO heads VALUES (?, ?)", heads.items())

    def segment(self, path: str) -> tuple[str, int, int, str] | None:
        row = self.conn.execute(
            "SELECT blob, size, lines, tail FROM segments WHERE path=?", (path,)).fetchone()
        return tuple(row) if row else None  # type: ignore[return-value]

    def set_segment(self, path: str, blob: str, size: int, lines: int, tail: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO segments VALUES (?, ?, ?, ?, ?)",
                          (path, blob, size, lines, tail))

    def add_bad_line(self, path: str, line: int, error: str, text: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO bad_lines VALUES (?, ?, ?, ?)",
                          (path, line, error, text[:500].decode("utf-8", "replace")))

    def bad_lines(self) -> list[dict]:
        rows = self.conn.execute("SELECT path, line, error, text FROM bad_lines ORDER BY path, line")
        return [dict(zip(("path", "line", "error", "text"), r, strict=True)) for r in rows]

    def ingest(self, items: Iterable[tuple[dict, str, str | None, int | None]],
               bulk: bool = False) -> list[dict]:
        """Add records (with their canonical text, file and line); fold the new ones; return them.

        ``bulk``: many records, maybe into an empty index (a rebuild), where ``_load`` is faster.
        """
        if bulk and self.conn.execute("SELECT 1 FROM records LIMIT 1").fetchone() is None:
            return self._load(items)
        new = []
        cur = self.conn.cursor()
        for record, text, path, line in items:
            cur.execute(
                "INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record["id"], record["kind"], record["clock"], record["actor"],
                 record["created_at"], record["replica"], path, line, text))
            if cur.rowcount:
                new.append(record)
        self._fold(new)
        return new

    def _load(self, items: Iterable[tuple[dict, str, str | None, int | None]]) -> list[dict]:
        """``ingest`` into an empty index, several times faster: ids are deduplicated here
        (first seen wins, as with INSERT OR IGNORE), and every index and counting trigger
        is dropped and built once from the rows instead of updated row by row (those of
        ``records`` before the fold, which reads them; the query indexes after it). All in
        the caller's transaction: a crash leaves the index as it was."""
        conn = self.conn
        seen: set[str] = set()
        rows, new = [], []
        for record, text, path, line in items:
            rid = record["id"]
            if rid not in seen:
                seen.add(rid)
                rows.append((rid, record["kind"], record["clock"], record["actor"],
                             record["created_at"], record["replica"], path, line, text))
                new.append(record)
        later = "".join(domain.QUERY_INDEXES for domain in DOMAINS)
        for kind, name in re.findall(r"CREATE (?:UNIQUE )?(INDEX|TRIGGER) IF NOT EXISTS (\w+)",
                                     RECORDS_INDEXES + later):
            conn.execute(f"DROP {kind} IF EXISTS {name}")
        conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        for statement in _statements(RECORDS_INDEXES):
            conn.execute(statement)
        conn.execute("DELETE FROM kind_counts")  # (the triggers count deletions from here on)
        conn.execute("INSERT INTO kind_counts SELECT kind, count(*) FROM records GROUP BY kind")
        self._fold(new)
        for statement in _statements(later):
            conn.execute(statement)
        return new

    def _fold(self, new: list[dict]) -> None:
        by_kind: dict[str, list[dict]] = {}
        for record in new:
            by_kind.setdefault(record["kind"], []).append(record)
        for domain in DOMAINS:
            domain.fold(self.conn, by_kind)

    # -- queries -------------------------------------------------------------

    def max_clock(self) -> int:
        return self.conn.execute("SELECT coalesce(max(clock), 0) FROM records").fetchone()[0]

    def counts(self) -> dict[str, int]:
        """Records of each kind (kept by triggers on ``records``: no scan)."""
        return dict(self.conn.execute("SELECT kind, n FROM kind_counts WHERE n > 0 ORDER BY kind"))

    def record(self, record_id: str) -> dict | None:
        row = self.conn.execute("SELECT data FROM records WHERE id=?", (record_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def record_location(self, record_id: str) -> tuple[str, int] | None:
        row = self.conn.execute("SELECT path, line FROM records WHERE id=?", (record_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def all_records(self) -> Iterator[dict]:
        for (data,) in self.conn.execute("SELECT data FROM records ORDER BY clock, id"):
            yield json.loads(data)

    def texts(self) -> Iterator[tuple[str, str | None, int | None, str]]:
        """Every record as stored: (id, segment path, line, canonical text) (``bd doctor``)."""
        yield from self.conn.execute("SELECT id, path, line, data FROM records ORDER BY id")

    def records_since(self, clock: int, kinds: tuple[str, ...] | None = None) -> list[dict]:
        sql = "SELECT data FROM records WHERE clock > ?"
        args: list = [clock]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += kinds
        return [json.loads(d) for (d,) in self.conn.execute(sql + " ORDER BY clock, id", args)]

    def arrival(self) -> int:
        """Where the index's arrival order ends: records are numbered (rowid) as they are
        folded, by whichever process folds them (``bd serve`` follows this order)."""
        return self.conn.execute("SELECT coalesce(max(rowid), 0) FROM records").fetchone()[0]

    def arrived_after(self, position: int, limit: int = 5000) -> list[tuple[int, dict]]:
        """Records folded after arrival ``position``, in arrival order, with their positions."""
        rows = self.conn.execute("SELECT rowid, data FROM records WHERE rowid > ? ORDER BY rowid "
                                 "LIMIT ?", (position, limit))
        return [(n, json.loads(d)) for n, d in rows]

    def resolve(self, token: str, prefix: str, kinds: tuple[str, ...] | None = None,
                what: str = "record") -> str:
        """A full id from an id or a unique prefix of one (>= 4 characters after the prefix)."""
        token = token.strip().lower()
        if "-" not in token:
            token = prefix + token
        head, _, rest = token.partition("-")
        if not head or len(rest) < 4 or not (head + rest).isalnum():
            raise InvalidInput(f"{token!r} is not an id: give an id or at least 4 characters of one")
        sql = "SELECT id FROM records WHERE id >= ? AND id < ?"
        args: list = [token, token + "~"]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += kinds
        found = [r[0] for r in self.conn.execute(sql + " ORDER BY id LIMIT 11", args)]
        if not found:
            raise NotFound(f"no {what} with id {token}; list them with 'bd mail inbox' or 'bd task list'")
        if len(found) > 1 and token not in found:
            shown = ", ".join(found[:10]) + (" ..." if len(found) > 10 else "")
            raise Ambiguous(f"id prefix {token} is ambiguous: {shown}; give more characters",
                            candidates=found)
        return token if token in found else found[0]

    def kv_get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def kv_set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

    def fingerprint(self) -> dict[str, list]:
        """Every domain table's rows, for comparing two indexes (tests, ``bd doctor``)."""
        out: dict[str, list] = {}
        for domain in DOMAINS:
            for table in domain.TABLES:
                rows = self.conn.execute(f"SELECT * FROM {table}").fetchall()
                out[table] = sorted((list(r) for r in rows), key=repr)
        out["records"] = [r[0] for r in self.conn.execute("SELECT id FROM records ORDER BY id")]
        return out
