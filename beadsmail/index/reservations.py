"""File reservations: leases on paths or globs, folded from ``reservation`` records.

A ``reserve`` record is a lease (one row of ``reservations``, inserted once);
``release`` and ``renew`` records are kept once each in ``reservation_events``
whatever order they arrive in. A lease's state is computed when it is read, from
the rows alone: released once any release names it (its holder's, or another
agent's marked ``forced``); it lapses at the latest of its own and its holder's
renewals' ``expires_at``, or as soon as its holder is unregistered (retired). So
every clone holding the same records sees the same leases, and an incremental
index equals a rebuilt one.

Each row keeps the regular expression of its pattern (git's wildmatch rules,
anchored at the repository root, compiled with ``pathspec`` when the record is
folded), so the commit guard matches paths with ``re`` alone.
"""

from __future__ import annotations

import sqlite3

DDL = """
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY, holder TEXT NOT NULL, pattern TEXT NOT NULL, regex TEXT NOT NULL,
    mode TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
    clock INTEGER NOT NULL, replica TEXT NOT NULL, reason TEXT, task TEXT,
    forced TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reservation_events (
    id TEXT NOT NULL, target TEXT NOT NULL, op TEXT NOT NULL, actor TEXT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT, forced INTEGER NOT NULL, reason TEXT,
    PRIMARY KEY (target, id)) WITHOUT ROWID;
"""
KEYS = ""
LOADED: dict = {}
LOADED_INTO: dict = {}
QUERY_INDEXES = ""
TABLES = ("reservations", "reservation_events")
_COLUMNS = ("id", "holder", "pattern", "regex", "mode", "created_at", "expires_at", "clock",
            "replica", "reason", "task", "forced", "until", "released_at", "released_by",
            "release_reason", "holder_registered")
# A lease as read: its row, when it lapses (renewals by its holder count), and who
# released it if anyone did (its holder, or another agent with --force).
_STATE = """
SELECT r.id, r.holder, r.pattern, r.regex, r.mode, r.created_at, r.expires_at, r.clock,
    r.replica, r.reason, r.task, r.forced,
    max(r.expires_at, coalesce((SELECT max(e.expires_at) FROM reservation_events e
        WHERE e.target = r.id AND e.op = 'renew' AND e.actor = r.holder), '')),
    x.created_at, x.actor, x.reason,
    coalesce((SELECT registered FROM agents a WHERE a.id = r.holder), 1)
FROM reservations r LEFT JOIN reservation_events x ON x.id = (
    SELECT e.id FROM reservation_events e WHERE e.target = r.id AND e.op = 'release'
    AND (e.actor = r.holder OR e.forced = 1) ORDER BY e.created_at, e.id LIMIT 1)
"""


def regex_of(pattern: str) -> str:
    """The regular expression of a wildmatch pattern, anchored at the repository root."""
    import warnings

    with warnings.catch_warnings():  # (pathspec names this class deprecated in favour of
        warnings.simplefilter("ignore")  # gitignore variants whose directory rules differ)
        from pathspec.patterns.gitwildmatch import GitWildMatchPattern

        regex, include = GitWildMatchPattern.pattern_to_regex("/" + pattern)
    if regex is None or not include:
        return "(?!)"  # matches nothing (a pattern that is only a comment or a negation)
    return regex


def fold(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    rows, events = [], []
    for r in by_kind.get("reservation", ()):
        if r["op"] == "reserve" and "pattern" in r and "expires_at" in r:
            rows.append((r["id"], r["actor"], r["pattern"], regex_of(r["pattern"]),
                         r.get("mode", "exclusive"), r["created_at"], r["expires_at"],
                         r["clock"], r["replica"], r.get("reason"), r.get("task"),
                         ",".join(r.get("forced", ()))))
        elif r["op"] in ("release", "renew"):
            events += [(r["id"], target, r["op"], r["actor"], r["created_at"],
                        r.get("expires_at"), int(bool(r.get("forced"))), r.get("reason"))
                       for target in r.get("targets", ())]
    conn.executemany("INSERT OR IGNORE INTO reservations VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.executemany("INSERT OR IGNORE INTO reservation_events VALUES (?,?,?,?,?,?,?,?)", events)


def leases(conn: sqlite3.Connection, *, holder: str | None = None,
           ids: list[str] | None = None) -> list[dict]:
    """Every lease (live or not) with its state columns, oldest first."""
    sql, args = _STATE + " WHERE 1", []
    if holder is not None:
        sql += " AND r.holder = ?"
        args.append(holder)
    if ids:
        sql += f" AND r.id IN ({','.join('?' * len(ids))})"
        args += ids
    rows = conn.execute(sql + " ORDER BY r.clock, r.id", args)
    return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]


def open_leases(conn: sqlite3.Connection, now: str) -> list[dict]:
    """Leases neither released nor lapsed at ``now`` (races between them not yet decided)."""
    return [lease for lease in leases(conn) if _open(lease, now)]


def _open(lease: dict, now: str) -> bool:
    return lease["released_at"] is None and lease["until"] > now and bool(
        lease["holder_registered"])
