"""Signed feeds as this clone verified them (see ``signing.feed``), and what failed.

``feeds`` holds each replica's key and the last verified position of its feed
(seq, sha256 of that line), so a refresh verifies only lines appended since.
``feed_problems`` keeps every line verification refused (bad signature, broken
chain, fork, ...) or did not fold (an unsigned line under ``require``, a writer
not bound to the identity it claims, a role it lacks), with segment and line,
for ``bd doctor``; those records are not in ``records``. ``feed_stubs`` keeps the
line hash each compaction stub on a verified chain stands for, so the line met
later through another head is that line, not a fork. ``bindings`` is the fold
of ``key`` records that bind or revoke an identity to a replica. No fold reads
another domain's table here, and nothing else in it depends on arrival order
except which of two forks is seen first (both are reported).
"""

from __future__ import annotations

import sqlite3

DDL = """
CREATE TABLE IF NOT EXISTS feeds (
    replica TEXT PRIMARY KEY, key BLOB, seq INTEGER NOT NULL, hash TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed_claims (
    actor TEXT NOT NULL, clock INTEGER NOT NULL, id TEXT NOT NULL, replica TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feed_problems (
    path TEXT NOT NULL, line INTEGER NOT NULL, replica TEXT, seq INTEGER, id TEXT,
    actor TEXT, status TEXT NOT NULL, why TEXT NOT NULL, text TEXT NOT NULL, ref TEXT,
    PRIMARY KEY (path, line, why)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed_stubs (
    replica TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY (replica, seq)) WITHOUT ROWID;
"""
KEYS = ""
QUERY_INDEXES = ""
LOADED: dict = {}
LOADED_INTO: dict = {}
TABLES = ("feeds",)  # (feed_problems name where a line was seen: that depends on arrival)



def fold(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    """The role checks at fold time (``refuse_roles``), right after the roster is folded
    (``DOMAINS`` order); the feed tables are written as segments are verified."""
    refuse_roles(conn, by_kind)


def load(conn: sqlite3.Connection, replica: str) -> tuple[bytes | None, int, str | None] | None:
    row = conn.execute("SELECT key, seq, hash FROM feeds WHERE replica = ?", (replica,)).fetchone()
    return (row[0], row[1], row[2]) if row else None


def save(conn: sqlite3.Connection, rows: list[tuple[str, bytes | None, int, str | None]]) -> None:
    conn.executemany("INSERT OR REPLACE INTO feeds VALUES (?, ?, ?, ?)", rows)


def stood(conn: sqlite3.Connection, replica: str, seq: int) -> str | None:
    """The line hash a compaction stub on the verified chain stands for (``feed.Checker``)."""
    row = conn.execute("SELECT hash FROM feed_stubs WHERE replica = ? AND seq = ?",
                       (replica, seq)).fetchone()
    return row[0] if row else None


def add_stood(conn: sqlite3.Connection, rows: list[tuple[str, int, str]]) -> None:
    conn.executemany("INSERT OR IGNORE INTO feed_stubs VALUES (?, ?, ?)", rows)


def add_problems(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    conn.executemany("INSERT OR REPLACE INTO feed_problems VALUES (?,?,?,?,?,?,?,?,?,?)", rows)


def add_claims(conn: sqlite3.Connection, rows: list[tuple[str, int, str, str]]) -> None:
    """First uses a part of a build made, for the building process (``Reader.absorb``)."""
    conn.executemany("INSERT INTO feed_claims VALUES (?, ?, ?, ?)", rows)


def claims_of(part) -> list[tuple[str, int, str, str]]:
    """The first uses in a part file (read before it is merged)."""
    conn = sqlite3.connect(part)
    try:
        return conn.execute("SELECT actor, clock, id, replica FROM feed_claims").fetchall()
    finally:
        conn.close()


def has_record(index, record_id: str) -> bool:
    """Whether a record is in the index (or in the build under way, ``Index.load``)."""
    rows = index._rows
    if rows is not None and record_id in rows.seen:
        return True
    return index.conn.execute("SELECT 1 FROM records WHERE id = ?",
                              (record_id,)).fetchone() is not None


def stored_text(index, record_id: str) -> str | None:
    """The stored line of a record in the index (or in the build under way)."""
    rows = index._rows
    if rows is not None and record_id in rows.seen:
        for row in rows.rows:  # (not written yet: at most one batch)
            if row[0] == record_id:
                return row[8]
    found = index.conn.execute("SELECT data FROM records WHERE id = ?", (record_id,)).fetchone()
    return found[0] if found else None


def problems(conn: sqlite3.Connection) -> list[dict]:
    cols = ("path", "line", "replica", "seq", "id", "actor", "status", "why", "text", "ref")
    rows = conn.execute(f"SELECT {', '.join(cols)} FROM feed_problems ORDER BY path, line, why")
    return [dict(zip(cols, r, strict=True)) for r in rows]


def signed(conn: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[bool, str, str | None]]:
    """For folded records: whether each carries a feed position (folded and signed means
    verified: forged lines never fold), the replica it names, and ``via``."""
    out: dict[str, tuple[bool, str, str | None]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = conn.execute(
            "SELECT id, json_extract(data, '$.seq') IS NOT NULL AND kind <> 'dropped', replica, "
            f"json_extract(data, '$.via') FROM records WHERE id IN ({','.join('?' * len(chunk))})",
            chunk)
        out.update((rid, (bool(has_seq), replica, via)) for rid, has_seq, replica, via in rows)
    return out


def all_feeds(conn: sqlite3.Connection) -> list[tuple[str, bytes | None, int]]:
    return conn.execute("SELECT replica, key, seq FROM feeds ORDER BY replica").fetchall()


# Capabilities checked at fold time against the (verified) writing identity, whatever
# the writer's own clone checked: kind -> (capability, who has it). A record refused here
# leaves ``records`` and is listed with the feed problems.
DELETERS = ("manager",)


def refuse_roles(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    """Drop tombstones whose writer lacked ``message.delete``/``task.delete`` when it
    wrote them: managers have them, and everyone while nobody was registered (as the
    write-time check says). Roles are taken as of the tombstone's ``(clock, id)`` from
    the agent records, so a rebuild decides as an incremental fold did."""
    kept, refused = [], []
    for r in by_kind.get("tombstone", ()):
        (kept if _may_delete(conn, r) else refused).append(r)
    if not refused:
        return
    by_kind["tombstone"] = kept
    for r in refused:
        row = conn.execute("SELECT path, line, data FROM records WHERE id = ?",
                           (r["id"],)).fetchone() or (None, 0, "")
        conn.execute("DELETE FROM records WHERE id = ?", (r["id"],))
        add_problems(conn, [(row[0] or "", row[1] or 0, r["replica"], r.get("seq"), r["id"],
                             r["actor"], "forged", f"{r['actor']} lacks the role to delete "
                             f"{r['target']} (a manager's capability); not applied",
                             row[2][:500], None)])


def _may_delete(conn: sqlite3.Connection, tombstone: dict) -> bool:
    rows = conn.execute(
        "SELECT json_extract(data, '$.agent'), json_extract(data, '$.op'), "
        "json_extract(data, '$.role') FROM records WHERE kind = 'agent' AND "
        "(clock < ?1 OR (clock = ?1 AND id < ?2)) AND json_extract(data, '$.op') <> 'heartbeat' "
        "ORDER BY clock, id", (tombstone["clock"], tombstone["id"]))
    roles: dict[str, str | None] = {}
    for agent, op, role in rows:
        if op == "unregister":
            roles.pop(agent, None)
        else:
            roles[agent] = role
    return not roles or roles.get(tombstone["actor"]) in DELETERS
