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
faster path to the same rows (``Index.building`` and ``Index.load``): a new file
without a journal, filled in batches, its indexes built once at the end instead
of updated row by row, and swapped in for the old one when complete.

A schema version change or an unreadable file means: delete it and rebuild.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from beadsmail.errors import Ambiguous, InvalidInput, NotFound
from beadsmail.index import build, copies, generations, mail, registry, reservations, search, tasks
from beadsmail.index import feeds as feeds

SCHEMA_VERSION = 24
# How long a process waits for another's index transaction: a full rebuild of a
# million records takes ~40 s here, and waiting beats failing.
BUSY_SECONDS = 120
# The WAL is checkpointed and truncated past this size (``Index.upkeep``): SQLite's own
# checkpoint runs at ~4 MB (1,000 pages), so this is about where it would start over.
WAL_LIMIT = 4 << 20
UPKEEP_WAIT_MS = 200
DOMAINS = (feeds, registry, mail, tasks, reservations, search)  # (feeds: role checks first)
# SQLite's primary result codes that mean "this file is not a usable index": SQLITE_ERROR
# (a table missing), SQLITE_CORRUPT, SQLITE_NOTADB. Anything else (busy, out of file
# descriptors, a disk error) is an error to report, not a reason to throw the index away.
UNREADABLE = (1, 11, 26)

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
    ref TEXT, commit_id TEXT, PRIMARY KEY (path, line));
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kind_counts (kind TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""
# The indexes and triggers of ``records``, which a build (``Index.load``) creates once after
# inserting the rows instead of updating them row by row. The id index is a separate UNIQUE
# index (not a column constraint) for that. Each domain has its own, in two sets: ``KEYS``,
# which its fold relies on, and ``QUERY_INDEXES``, which only queries read.
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


def _tables() -> Iterator[str]:
    """The statements that make every table, without indexes (a build adds them last)."""
    for ddl in (CORE_DDL, copies.DDL, *(domain.DDL for domain in DOMAINS)):
        yield from _statements(ddl)


class Index:
    """The index at ``path``, a symlink to its current generation (see ``generations``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rebuilt = False
        self._linked: str | None = None
        self._rows: build.Rows | None = None
        self.conn = self._open()

    # -- lifecycle -----------------------------------------------------------

    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        path = path or self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        conn.execute("PRAGMA synchronous=NORMAL")  # a cache: consistent after a crash is enough
        conn.execute("PRAGMA cache_size=-131072")
        # Reads use the file's pages in place instead of copying each into the page
        # cache: a cold process listing 10,000 tasks reads ~5 MB ~9 ms faster.
        conn.execute("PRAGMA mmap_size=268435456")
        return conn

    def _open(self, retry: bool = True, fresh: bool = False,
              locked: bool = False) -> sqlite3.Connection:
        """Connect to the current generation; make a new, empty one if there is none, if
        it is unreadable or of another schema version, or if asked for (``fresh``).
        ``locked``: the caller holds the build lock."""
        self._linked = generations.target(self.path)
        if self._linked is not None and not fresh:
            conn = None
            try:
                conn = self._connect()
                if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                    conn.execute("SELECT count(*) FROM heads").fetchone()
                    return conn
            except sqlite3.DatabaseError as exc:
                if conn is not None:
                    conn.close()
                conn = None
                # not a damaged file (busy, no file descriptors left, a disk error):
                # an error, unless another process has just published a new one
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in UNREADABLE and (
                        not retry or generations.target(self.path) == self._linked):
                    raise
            if conn is not None:
                conn.close()
        with nullcontext() if locked else generations.build_lock(self.path, BUSY_SECONDS):
            if retry and not fresh and generations.target(self.path) != self._linked:
                return self._open(retry=False, locked=True)  # another process made one
            new = generations.new(self.path)
            conn = self._connect(new)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("BEGIN IMMEDIATE")
                for ddl in (CORE_DDL, copies.DDL, RECORDS_INDEXES,
                            *(domain.DDL for domain in DOMAINS),
                            *(domain.KEYS for domain in DOMAINS),
                            *(domain.QUERY_INDEXES for domain in DOMAINS)):
                    for statement in _statements(ddl):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
                conn.close()
                self._linked = generations.publish(self.path, new)
            except BaseException:
                conn.close()
                generations.discard(new)
                raise
        self.rebuilt = True
        return self._connect()

    def reset(self) -> None:
        """Forget everything; the next refresh folds from scratch."""
        conn = self._open(fresh=True)
        self.conn.close()
        self.conn = conn

    @contextmanager
    def building(self, force: bool = False) -> Iterator[bool]:
        """Build a whole new generation (``load``), published when complete.

        For a first fold or a rebuild: every record is written at once into a file
        nobody reads yet, so without a journal; that halves what is written, and the
        commit costs a quarter of one through the WAL. Until it is published, other
        processes keep reading the index as it was; a failure or a crash leaves it as
        it was (a killed build's file is removed by the next). Builders take turns.
        One that waited while another published reopens the index and yields False
        (unless ``force``): refresh that one as usual.
        """
        with generations.build_lock(self.path, BUSY_SECONDS):
            generations.sweep(self.path, generations.target(self.path))
            if generations.target(self.path) != self._linked:
                conn = self._open(locked=True)
                self.conn.close()
                self.conn = conn
            if not force and self.conn.execute("SELECT 1 FROM heads LIMIT 1").fetchone():
                yield False
                return
            new = generations.new(self.path)
            old = conn = self.conn
            published = False
            try:
                conn = build.scratch(new, _tables())
                self.conn = conn
                yield True
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.close()
                fd = os.open(new, os.O_RDONLY)
                try:
                    os.fsync(fd)  # complete on disk before it is published
                finally:
                    os.close(fd)
                self._linked = generations.publish(self.path, new)
                published = True
                self.conn = self._connect()
            except BaseException:
                if conn is not old:
                    conn.close()
                if not published:
                    generations.discard(new)
                self.conn = old  # (the generation it had: still whole)
                raise
            old.close()

    def close(self) -> None:
        self.conn.close()

    def upkeep(self) -> bool:
        """Checkpoint the WAL into the file and truncate it once it passes ``WAL_LIMIT``.

        Each ``bd`` process folds a little and leaves (without closing: see ``cli.run``),
        so SQLite's own checkpoints never get to reset the WAL: 2,000 sends left a 142 MB
        WAL beside a 1.1 MB index, and every read paid for it (``bd mail check`` 100 ms
        against 40 ms). Costs one ``stat`` when the WAL is small. Waits at most
        ``UPKEEP_WAIT_MS`` for readers of older snapshots; if they stay, a later write
        does it. True when it truncated."""
        name = self._linked or self.path.name
        try:
            if os.stat(self.path.with_name(name + "-wal")).st_size <= WAL_LIMIT:
                return False
        except OSError:
            return False
        try:
            self.conn.execute(f"PRAGMA busy_timeout={UPKEEP_WAIT_MS}")
            busy = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.OperationalError:
            busy = 1
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        return not busy

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

    def add_rejection(self, rejection) -> None:
        """Keep what the boundary refused (a ``boundary.Rejection``) for ``bd doctor``; of
        the same path and line found in several heads, the first folded (the local ref's)."""
        self.conn.execute("INSERT OR IGNORE INTO bad_lines VALUES (?, ?, ?, ?, ?, ?)",
                          (rejection.path, rejection.line, rejection.why,
                           rejection.text[:500].decode("utf-8", "backslashreplace"),
                           rejection.ref, rejection.commit))

    def bad_lines(self) -> list[dict]:
        """What the boundary refused: path (under .beads/log), line (0: a whole file or
        tree entry), error, text, and the ref and commit it was found in."""
        rows = self.conn.execute("SELECT path, line, error, text, ref, commit_id FROM bad_lines "
                                 "ORDER BY path, line")
        return [dict(zip(("path", "line", "error", "text", "ref", "commit"), r, strict=True))
                for r in rows]

    def ingest(self, items: Iterable[tuple[dict, str, str | None, int | None]]) -> list[dict]:
        """Add records (with their canonical text, file and line); fold the new ones; return
        them. Another copy of an id held goes to ``copies.contend`` (which may raise
        ``copies.Reorder``: build the index anew)."""
        new = []
        cur = self.conn.cursor()
        for record, text, path, line in items:
            cur.execute(
                "INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record["id"], record["kind"], record["clock"], record["actor"],
                 record["created_at"], record["replica"], path, line, text))
            if cur.rowcount:
                new.append(record)
            else:
                copies.contend(self.conn, (record, text, path, line))
        self._fold(new)
        return new

    def load(self, sources: Iterable[Iterable[tuple[dict, str, str | None, int | None]] | Path]
             ) -> int:
        """``ingest`` into an index being built (``building``), several times faster; return
        how many records were new. ``sources`` are, in the fold's order, iterables of
        records or the files of parts other processes loaded (see ``build``). The
        indexes their folds rely on are built before the kinds not loaded directly are
        folded; the query indexes come last."""
        rows = self._rows = build.Rows(self.conn, DOMAINS)
        for source in sources:
            if isinstance(source, Path):
                rows.merge(source)
            else:
                rows.add(source)
        rows.flush()
        conn = self.conn
        for ddl in (RECORDS_INDEXES, *(domain.KEYS for domain in DOMAINS)):
            for statement in _statements(ddl):
                conn.execute(statement)
        rows.settle()  # (one copy of each id held, by the rule of ``copies``)
        conn.execute("INSERT INTO kind_counts SELECT kind, count(*) FROM records GROUP BY kind")
        self._fold(rows.others)
        for domain in DOMAINS:
            for statement in _statements(domain.QUERY_INDEXES):
                conn.execute(statement)
        self._rows = None
        return len(rows.seen)

    @classmethod
    def scratch(cls, path: Path) -> Index:
        """An index of no generation for another process's part of a build (``load_part``)."""
        self = cls.__new__(cls)
        self.path, self.rebuilt, self._linked, self._rows = path, False, None, None
        self.conn = build.scratch(path, _tables())
        return self

    def load_part(self, items: Iterable[tuple[dict, str, str | None, int | None]]) -> None:
        rows = self._rows = build.Rows(self.conn, DOMAINS)
        rows.add(items)
        rows.flush()
        self.conn.execute("COMMIT")
        self.conn.close()

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
        out["copies"] = self.conn.execute("SELECT id, path, line, differs FROM copies "
                                          "ORDER BY id, path, line").fetchall()
        return out
