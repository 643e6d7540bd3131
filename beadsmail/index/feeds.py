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
    """The role checks at fold time, before the roster is folded (``DOMAINS`` order):
    agent records (``refuse_agents``) and tombstones (``refuse_roles``). The feed tables
    are written as segments are verified."""
    refuse_agents(conn, by_kind)
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
    def why(r: dict) -> str | None:
        if is_manager(conn, r["actor"], r["clock"], r["id"]):
            return None
        return (f"{r['actor']} lacks the role to delete {r['target']} (a manager's "
                "capability); not applied")

    _refuse(conn, by_kind, "tombstone", why)


def refuse_agents(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    """Drop agent records their writer could not have written (the checks of
    ``agents.register``, ``set_status`` and ``unregister``): an identity changes only
    its own profile, and takes the manager role itself only while no manager is
    registered; a manager (as of the record's ``(clock, id)``, everyone while nobody
    was registered) changes anyone's. Checked one by one in ``(clock, id)`` order: a
    refused record gives nobody a role. An agent record that arrives older than one
    already folded, or than one refused, makes the index fold anew (``Reorder``), so
    every verdict is a function of the records alone."""
    _reorder_if_late(conn, [r for r in by_kind.get("agent", ()) if r["op"] != "heartbeat"],
                     {r["id"] for records in by_kind.values() for r in records})

    def why(r: dict) -> str | None:
        actor, agent = r["actor"], r["agent"]
        promotes = r.get("role") == "manager" and r["op"] != "heartbeat"
        if actor == agent and not promotes:
            return None  # (the common case: no query)
        if is_manager(conn, actor, r["clock"], r["id"]):
            return None
        if actor != agent:
            return (f"{actor} lacks the role to change agent {agent}'s profile (a manager's "
                    "capability); not applied")
        if not _roles(conn, r["clock"], r["id"], managers_only=True):
            return None  # (the first manager registers itself)
        return f"{actor} may not give itself the manager role (only a manager may); not applied"

    _refuse(conn, by_kind, "agent", why)


def _reorder_if_late(conn: sqlite3.Connection, new: list[dict], ids: set[str]) -> None:
    """``ids``: every record of this fold (a build's are all of them: nothing is late)."""
    if not new:
        return
    from beadsmail.index.copies import Reorder

    clock, first = min((r["clock"], r["id"]) for r in new)
    # records whose verdict depends on the roles before them: tombstones, and agent records
    # that change another's profile or give the manager role
    later = conn.execute(
        "SELECT id FROM records WHERE (clock > ?1 OR (clock = ?1 AND id > ?2)) AND "
        "(kind = 'tombstone' OR (kind = 'agent' AND json_extract(data, '$.op') <> 'heartbeat' "
        "AND (json_extract(data, '$.agent') <> actor OR json_extract(data, '$.role') = "
        "'manager')))", (clock, first)).fetchall()
    refused = conn.execute(
        "SELECT 1 FROM feed_problems WHERE why LIKE '%; not applied' AND (NOT json_valid(text) "
        "OR json_extract(text, '$.clock') > ?1 OR (json_extract(text, '$.clock') = ?1 AND "
        "id > ?2)) LIMIT 1", (clock, first)).fetchone()
    if refused or any(row[0] not in ids for row in later):
        raise Reorder(first)


def _refuse(conn: sqlite3.Connection, by_kind: dict[str, list[dict]], kind: str, why) -> None:
    kept = []
    for r in sorted(by_kind.get(kind, ()), key=lambda r: (r["clock"], r["id"])):
        reason = why(r)
        if reason is None:
            kept.append(r)
            continue
        row = conn.execute("SELECT path, line, data FROM records WHERE id = ?",
                           (r["id"],)).fetchone() or (None, 0, "")
        conn.execute("DELETE FROM records WHERE id = ?", (r["id"],))
        add_problems(conn, [(row[0] or "", row[1] or 0, r["replica"], r.get("seq"), r["id"],
                             r["actor"], "forged", reason, row[2][:500], None)])
    if kind in by_kind:
        by_kind[kind] = kept


def is_manager(conn: sqlite3.Connection, actor: str, clock: int, record_id: str,
               registered: bool = False) -> bool:
    """Whether ``actor`` acted as a manager at ``(clock, record_id)``: registered as one by
    the (folded) agent records before it, or (unless ``registered``) nobody registered."""
    roles = _roles(conn, clock, record_id)
    return (not roles and not registered) or roles.get(actor) in DELETERS


def _roles(conn: sqlite3.Connection, clock: int, record_id: str,
           managers_only: bool = False) -> dict[str, str | None]:
    """Registered agents and their roles as of ``(clock, record_id)``."""
    rows = conn.execute(
        "SELECT json_extract(data, '$.agent'), json_extract(data, '$.op'), "
        "json_extract(data, '$.role') FROM records WHERE kind = 'agent' AND "
        "(clock < ?1 OR (clock = ?1 AND id < ?2)) AND json_extract(data, '$.op') <> 'heartbeat' "
        "ORDER BY clock, id", (clock, record_id))
    roles: dict[str, str | None] = {}
    for agent, op, role in rows:
        if op == "unregister":
            roles.pop(agent, None)
        else:
            roles[agent] = role
    if managers_only:
        return {a: r for a, r in roles.items() if r in DELETERS}
    return roles
