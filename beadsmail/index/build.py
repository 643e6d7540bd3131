"""Loading every record into a new index generation at once (``Index.load``).

A build (``Index.building``) writes into a file nobody reads yet, so rows go in
by batches of 5,000 with ids deduplicated here (the first seen goes into
``records``, every later copy into ``copies``, and ``settle`` holds the copy the
rule of ``copies`` prefers once all are loaded), the kinds a domain loads
directly (``LOADED``: messages, which nothing can have deleted yet since
deletions fold later) go straight into their tables, and the others wait to be folded at the end, once the indexes their
folds rely on exist.

A large build may be split: another process loads part of the segments into a
scratch file of the same tables (``scratch``, ``Rows.add``), and ``Rows.merge``
copies its rows in where that part comes in the fold's order, in SQL (rows of
ids seen before go to ``copies``). Copying a row costs a fraction of parsing it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from beadsmail.index import copies as copies_mod

BATCH = 5000
Item = tuple[dict, str, "str | None", "int | None"]


class Rows:
    """The records of a build, as they are added."""

    def __init__(self, conn: sqlite3.Connection, domains: tuple) -> None:
        self.conn = conn
        self.loaders = {kind: fn for domain in domains for kind, fn in domain.LOADED.items()}
        self.tables = {t: c for domain in domains for t, c in domain.LOADED_INTO.items()}
        self.pending: dict[str, list[dict]] = {kind: [] for kind in self.loaders}
        self.seen: set[str] = set()
        self.rows: list[tuple] = []
        self.copies: list[tuple] = []  # later copies of ids seen before
        self.others: list[dict] = []  # to fold at the end

    def add(self, items: Iterable[Item]) -> None:
        seen, rows, pending, others = self.seen, self.rows, self.pending, self.others
        for record, text, path, line in items:
            rid = record["id"]
            if rid in seen:
                if path is not None:
                    self.copies.append((rid, path, text, line or 0))
                continue
            seen.add(rid)
            kind = record["kind"]
            rows.append((rid, kind, record["clock"], record["actor"], record["created_at"],
                         record["replica"], path, line, text))
            pending.get(kind, others).append(record)
            if len(rows) >= BATCH:
                self.flush()

    def flush(self) -> None:
        self.conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self.rows)
        self.rows.clear()
        self.conn.executemany(copies_mod.ADD_CANDIDATE, self.copies)
        self.copies.clear()
        for kind, batch in self.pending.items():
            if batch:
                self.loaders[kind](self.conn, batch)
                batch.clear()

    def merge(self, part: Path) -> None:
        """Copy in the rows another process loaded into ``part`` (see ``scratch``)."""
        conn = self.conn
        self.flush()
        conn.execute("COMMIT")  # (no ATTACH inside a transaction; nobody reads this file yet)
        conn.execute("ATTACH DATABASE ? AS part", (str(part),))
        conn.execute("BEGIN")
        ids = [r[0] for r in conn.execute("SELECT id FROM part.records ORDER BY rowid")]
        seen_before = self.seen.intersection(ids)
        conn.execute("CREATE TEMP TABLE seen_before (id TEXT PRIMARY KEY) WITHOUT ROWID")
        conn.executemany("INSERT INTO temp.seen_before VALUES (?)", [(i,) for i in seen_before])
        new = "{} NOT IN (SELECT id FROM temp.seen_before)"
        conn.execute("INSERT INTO copies SELECT * FROM part.copies WHERE true ON CONFLICT (id, "
                     "path, data) DO UPDATE SET line = min(line, excluded.line)")
        conn.execute("INSERT INTO copies SELECT id, path, data, coalesce(line, 0), 0 FROM "
                     f"part.records WHERE path IS NOT NULL AND NOT {new.format('id')} ON CONFLICT "
                     "(id, path, data) DO UPDATE SET line = min(line, excluded.line)")
        conn.execute("INSERT INTO records SELECT * FROM part.records WHERE "
                     f"{new.format('id')} ORDER BY rowid")
        for table, column in self.tables.items():
            conn.execute(f"INSERT INTO {table} SELECT * FROM part.{table} "
                         f"WHERE {new.format(column)} ORDER BY rowid")
        conn.execute("INSERT OR REPLACE INTO segments SELECT * FROM part.segments")
        conn.execute("INSERT OR REPLACE INTO bad_lines SELECT * FROM part.bad_lines")
        for table in ("feeds", "feed_problems", "feed_stubs"):  # (the part verified whole feeds)
            conn.execute(f"INSERT OR REPLACE INTO {table} SELECT * FROM part.{table}")
        kinds = list(self.loaders)
        rows = conn.execute(f"SELECT data FROM part.records WHERE {new.format('id')} AND kind "
                            f"NOT IN ({','.join('?' * len(kinds))}) ORDER BY rowid", kinds)
        self.others += [json.loads(data) for (data,) in rows]
        self.seen.update(ids)
        conn.execute("DROP TABLE temp.seen_before")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE part")
        conn.execute("BEGIN")
        part.unlink(missing_ok=True)

    def settle(self) -> None:
        """Hold each id's preferred copy (``copies.settle``); where that changes what a
        record says, take the first copy's rows out of the loaded tables (or out of the
        records still to fold) and load or fold the preferred one instead."""
        self.flush()
        replaced = copies_mod.settle(self.conn)
        if not replaced:
            return
        gone = {old["id"] for old, _ in replaced}
        self.others = [r for r in self.others if r["id"] not in gone]
        for old, new in replaced:
            if old["kind"] in self.loaders:
                for table, column in self.tables.items():
                    self.conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (old["id"],))
            if new["kind"] in self.loaders:
                self.loaders[new["kind"]](self.conn, [new])
            else:
                self.others.append(new)


def scratch(path: Path, ddl: Iterable[str]) -> sqlite3.Connection:
    """A new file nobody reads yet, for a build or another process's part of one: the
    tables, no indexes, no journal, a transaction open (commit it when done)."""
    for suffix in ("", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-131072")
    for statement in ddl:
        conn.execute(statement)
    conn.execute("BEGIN")
    return conn


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while folding: a rebuild makes a few objects per
    record that all stay alive, which the collector would otherwise traverse again and
    again (~4 us per record at 100,000 records) to free nothing."""
    import gc

    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
