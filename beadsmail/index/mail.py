"""Messages, recipients, per-recipient receipts and deletions, folded from records.

Order-independent by construction: a message row is inserted once unless its id
was deleted; a receipt only moves forward (delivered < read < acked) and keeps
the earliest read/ack times; a tombstone or purge deletes its targets and is
remembered, so a message arriving after its deletion is never shown. A purge
(ephemeral cleanup) also drops the messages and their receipts from the raw
``records`` cache, since compaction removes their lines from the store.
Addressing (``#channel``, ``@group``, ``*``) is stored as written and resolved
at query time, so a late registration or join never depends on arrival order.
``messages`` keeps the columns that queries filter and sort on; a message's
text is read from ``records`` by id, not stored twice.
"""

from __future__ import annotations

import json
import sqlite3

from beadsmail.records import sender_group

DDL = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT NOT NULL, clock INTEGER NOT NULL, created_at TEXT NOT NULL,
    sender TEXT NOT NULL, subject TEXT NOT NULL, priority INTEGER NOT NULL,
    type TEXT NOT NULL, thread_id TEXT NOT NULL, ephemeral INTEGER NOT NULL,
    sender_group TEXT);
CREATE TABLE IF NOT EXISTS message_to (message_id TEXT NOT NULL, target TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    message_id TEXT NOT NULL, recipient TEXT NOT NULL, state INTEGER NOT NULL,
    read_at TEXT, acked_at TEXT, delivered_at TEXT,
    PRIMARY KEY (message_id, recipient)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deleted (id TEXT PRIMARY KEY, by_record TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS purged (id TEXT PRIMARY KEY) WITHOUT ROWID;
"""
# The keys the fold relies on (a build creates them after loading the messages) ...
KEYS = """
CREATE UNIQUE INDEX IF NOT EXISTS messages_id ON messages(id);
CREATE UNIQUE INDEX IF NOT EXISTS message_to_key ON message_to(message_id, target);
"""
# ... and the indexes only queries read (a build creates them after the fold).
QUERY_INDEXES = """
CREATE INDEX IF NOT EXISTS messages_thread ON messages(thread_id, clock);
CREATE INDEX IF NOT EXISTS messages_sender ON messages(sender, clock);
CREATE INDEX IF NOT EXISTS messages_group ON messages(sender_group, clock);
CREATE INDEX IF NOT EXISTS message_to_target ON message_to(target, message_id);
"""
TABLES = ("messages", "message_to", "receipts", "deleted", "purged")
STATES = {"delivered": 1, "read": 2, "acked": 3}
STATE_NAMES = {0: "unread", 1: "delivered", 2: "read", 3: "acked"}


def fold(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    _messages(conn, by_kind.get("message", ()))
    _receipts(conn, by_kind.get("receipt", ()))
    deletions = [(t, r["id"]) for r in by_kind.get("tombstone", ()) for t in [r["target"]]]
    purged = [t for r in by_kind.get("purge", ()) for t in r["targets"]]
    deletions += [(t, r["id"]) for r in by_kind.get("purge", ()) for t in r["targets"]]
    _delete(conn, deletions)
    _forget_purged(conn, purged, by_kind.get("message", ()), by_kind.get("receipt", ()))


def _rows(records) -> tuple[list[tuple], list[tuple[str, str]]]:
    rows, targets = [], []
    for r in records:
        rows.append((r["id"], r["clock"], r["created_at"], r["from"], r["subject"],
                     r["priority"], r["type"], r["thread_id"], int(r["ephemeral"]),
                     sender_group(r)))
        targets += [(r["id"], t) for t in r["to"]]
    return rows, targets


def load_messages(conn: sqlite3.Connection, records: list[dict]) -> None:
    """Messages into an index being built (``Index.load``): plain inserts, since their ids
    are unique there and nothing is deleted yet (tombstones and purges fold later)."""
    rows, targets = _rows(records)
    conn.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    conn.executemany("INSERT INTO message_to VALUES (?, ?)", targets)


LOADED = {"message": load_messages}
LOADED_INTO = {"messages": "id", "message_to": "message_id"}  # (tables, their record id)


def _messages(conn: sqlite3.Connection, records) -> None:
    rows, targets = _rows(records)
    if not rows:
        return
    conn.executemany(
        "INSERT OR IGNORE INTO messages SELECT ?,?,?,?,?,?,?,?,?,? "
        "WHERE NOT EXISTS (SELECT 1 FROM deleted WHERE id = ?1)", rows)
    conn.executemany(
        "INSERT OR IGNORE INTO message_to SELECT ?1, ?2 "
        "WHERE NOT EXISTS (SELECT 1 FROM deleted WHERE id = ?1)", targets)


def _receipts(conn: sqlite3.Connection, records) -> None:
    rows = []
    for r in records:
        state = STATES[r["state"]]
        rows.append((r["message"], r["recipient"], state,
                     r["created_at"] if state >= 2 else None,
                     r["created_at"] if state == 3 else None, r["created_at"]))
    conn.executemany(
        "INSERT INTO receipts SELECT ?1, ?2, ?3, ?4, ?5, ?6 "
        "WHERE NOT EXISTS (SELECT 1 FROM deleted WHERE id = ?1) "
        "ON CONFLICT (message_id, recipient) DO UPDATE SET state = max(state, excluded.state), "
        "read_at = coalesce(min(read_at, excluded.read_at), read_at, excluded.read_at), "
        "acked_at = coalesce(min(acked_at, excluded.acked_at), acked_at, excluded.acked_at), "
        "delivered_at = min(delivered_at, excluded.delivered_at)",
        rows)


def _forget_purged(conn: sqlite3.Connection, purged: list[str], messages, receipts) -> None:
    """Purged messages and their receipts leave ``records`` too, whenever they arrive.

    Cleanup compacts their lines away from the purging replica's segments, so a
    rebuild would not see them there; dropping them on every path keeps an
    incremental index equal to a rebuilt one, whichever lines still exist.
    """
    if purged:
        conn.executemany("INSERT OR IGNORE INTO purged VALUES (?)", [(t,) for t in purged])
        conn.executemany("DELETE FROM records WHERE id = ?", [(t,) for t in purged])
        conn.execute("DELETE FROM records WHERE kind = 'receipt' AND "
                     "json_extract(data, '$.message') IN (SELECT id FROM purged)")
    if conn.execute("SELECT 1 FROM purged LIMIT 1").fetchone() is None:
        return  # nothing was ever purged: nothing arriving can be a purged record
    conn.executemany("DELETE FROM records WHERE id = ?1 AND EXISTS "
                     "(SELECT 1 FROM purged WHERE id = ?1)", [(r["id"],) for r in messages])
    conn.executemany("DELETE FROM records WHERE id = ?1 AND EXISTS "
                     "(SELECT 1 FROM purged WHERE id = ?2)", [(r["id"], r["message"]) for r in receipts])


def hide(conn: sqlite3.Connection, ids: list[str]) -> None:
    """Take messages out of every view without deleting them (their records and receipts
    stay): the task fold's posts about moves it did not apply (``index.tasks``)."""
    if ids:
        conn.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
        conn.executemany("DELETE FROM message_to WHERE message_id = ?", [(i,) for i in ids])


def restore(conn: sqlite3.Connection, records: list[dict]) -> None:
    """Show hidden messages again (those not deleted; shown ones are left as they are)."""
    _messages(conn, records)


def _delete(conn: sqlite3.Connection, deletions: list[tuple[str, str]]) -> None:
    if not deletions:
        return
    conn.executemany("INSERT INTO deleted VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
                     "SET by_record = min(by_record, excluded.by_record)", deletions)
    ids = [(t,) for t, _ in deletions]
    conn.executemany("DELETE FROM messages WHERE id = ?", ids)
    conn.executemany("DELETE FROM message_to WHERE message_id = ?", ids)
    conn.executemany("DELETE FROM receipts WHERE message_id = ?", ids)


# -- queries -----------------------------------------------------------------

DIRECT = "target NOT GLOB '[#@*]*'"


def reach(conn: sqlite3.Connection, me: str) -> list[str]:
    """The non-direct targets that reach ``me`` now: ``*``, ``@<my group>``, ``#<joined>``."""
    targets = ["*"]
    row = conn.execute("SELECT grp FROM agents WHERE id = ? AND registered = 1", (me,)).fetchone()
    if row and row[0]:
        targets.append("@" + row[0])
    targets += ["#" + c for (c,) in conn.execute(
        "SELECT channel FROM memberships WHERE agent = ? AND joined = 1 ORDER BY channel", (me,))]
    return targets


def _mine_cte(targets: list[str]) -> str:
    """Ids of messages addressed to ?1 directly, or through ``targets`` by someone else."""
    marks = ",".join("?" * len(targets))
    return ("WITH mine(id) AS (SELECT message_id FROM message_to WHERE target = ?1 UNION "
            "SELECT t.message_id FROM message_to t JOIN messages s ON s.id = t.message_id "
            f"WHERE t.target IN ({marks}) AND s.sender <> ?1) ")


def inbox(conn: sqlite3.Connection, me: str, targets: list[str], *, sender: str | None = None,
          priority: int | None = None, type_: str | None = None, unread: bool = False,
          include_acked: bool = False, limit: int | None = None,
          group: str | None = None) -> list[tuple[dict, int, str | None]]:
    """Messages addressed to ``me``: (record, my state, my read time), urgent first, newest next.
    With ``group``: what reaches me through ``targets`` only from senders in that group or
    in none (what is addressed to me by name always)."""
    # (the text is looked up for the rows the WHERE clause keeps only)
    sql = (_mine_cte(targets) + "SELECT (SELECT data FROM records WHERE id = m.id), "
           "coalesce(r.state, 0), r.read_at FROM mine JOIN messages m ON m.id = mine.id "
           "LEFT JOIN receipts r ON r.message_id = m.id AND r.recipient = ?1 WHERE 1")
    args: list = [me, *targets]
    if not include_acked:
        sql += " AND coalesce(r.state, 0) < 3"
    if unread:
        sql += " AND coalesce(r.state, 0) < 2"
    for column, value in (("m.sender", sender), ("m.priority", priority), ("m.type", type_)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    if group is not None:
        sql += (" AND (m.sender_group IS NULL OR m.sender_group = ? OR EXISTS (SELECT 1 FROM "
                "message_to d WHERE d.message_id = m.id AND d.target = ?1))")
        args.append(group)
    sql += " ORDER BY m.priority, m.created_at DESC, m.id DESC"
    if limit:
        sql += " LIMIT ?"
        args.append(limit)
    return [(json.loads(d), s, at) for d, s, at in conn.execute(sql, args)]


def addressed_to(conn: sqlite3.Connection, message_id: str, me: str, targets: list[str]) -> bool:
    """Whether ``message_id`` reaches ``me`` (see ``inbox``), whatever my state."""
    marks = ",".join("?" * len(targets))
    row = conn.execute(
        "SELECT 1 FROM message_to t JOIN messages m ON m.id = t.message_id WHERE t.message_id = ? "
        f"AND (t.target = ? OR (t.target IN ({marks}) AND m.sender <> ?)) LIMIT 1",
        [message_id, me, *targets, me]).fetchone()
    return row is not None


def feed(conn: sqlite3.Connection, group: str, limit: int) -> list[dict]:
    """The newest ``limit`` messages sent by agents of ``group`` (whatever their
    recipients: btmsg's group feed), oldest first."""
    rows = conn.execute(
        "SELECT (SELECT data FROM records WHERE id = x.id) FROM (SELECT id, clock FROM messages "
        "WHERE sender_group = ? ORDER BY clock DESC, id DESC LIMIT ?) x ORDER BY x.clock, x.id",
        (group, limit))
    return [json.loads(d) for (d,) in rows]


def message(conn: sqlite3.Connection, message_id: str) -> dict | None:
    row = conn.execute("SELECT d.data FROM messages m JOIN records d ON d.id = m.id "
                       "WHERE m.id = ?", (message_id,)).fetchone()
    return json.loads(row[0]) if row else None


def deleted_by(conn: sqlite3.Connection, record_id: str) -> str | None:
    row = conn.execute("SELECT by_record FROM deleted WHERE id = ?", (record_id,)).fetchone()
    return row[0] if row else None


def first_receipts(conn: sqlite3.Connection, ids: list[str]
                   ) -> dict[str, tuple[str | None, str | None]]:
    """(delivered_at, read_at) of each message: when any recipient first had it delivered
    (a read or ack counts as delivered) and first read it."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = conn.execute("SELECT message_id, min(delivered_at), min(read_at) FROM receipts "
                            f"WHERE message_id IN ({','.join('?' * len(chunk))}) "
                            "GROUP BY message_id", chunk)
        out.update({mid: (d, r) for mid, d, r in rows})
    return out


def state(conn: sqlite3.Connection, message_id: str, recipient: str) -> int:
    row = conn.execute("SELECT state FROM receipts WHERE message_id = ? AND recipient = ?",
                       (message_id, recipient)).fetchone()
    return row[0] if row else 0


def receipts(conn: sqlite3.Connection, message_id: str) -> list[dict]:
    rows = conn.execute("SELECT recipient, state, read_at, acked_at FROM receipts "
                        "WHERE message_id = ? ORDER BY recipient", (message_id,))
    return [{"recipient": who, "state": STATE_NAMES[st], "read_at": r, "acked_at": a}
            for who, st, r, a in rows]


def thread(conn: sqlite3.Connection, thread_id: str) -> list[dict]:
    """Every message of a conversation, in time order."""
    rows = conn.execute("SELECT d.data FROM messages m JOIN records d ON d.id = m.id "
                        "WHERE m.thread_id = ? ORDER BY m.created_at, m.clock, m.id", (thread_id,))
    return [json.loads(d) for (d,) in rows]


# -- cleanup -------------------------------------------------------------------

def closed_ephemeral(conn: sqlite3.Connection, created_before: str) -> list[dict]:
    """Ephemeral messages created before the time given that every recipient has acked.

    Every direct recipient must have acked. ``*``, ``@group`` and ``#channel``
    resolve to the agents they reach now (the sender aside), who must all have
    acked; a message whose indirect targets reach nobody needs one ack.
    """
    rows = conn.execute(
        "SELECT m.id, m.sender, m.subject, m.created_at FROM messages m "
        "WHERE m.ephemeral = 1 AND m.created_at < ? AND NOT EXISTS ("
        f"  SELECT 1 FROM message_to t WHERE t.message_id = m.id AND t.{DIRECT} AND NOT EXISTS ("
        "    SELECT 1 FROM receipts r WHERE r.message_id = m.id AND r.recipient = t.target "
        "    AND r.state = 3)) ORDER BY m.created_at, m.id", (created_before,)).fetchall()
    audiences: dict[str, set[str]] = {}
    closed = []
    for mid, sender, subject, created in rows:
        indirect = [t for (t,) in conn.execute(
            f"SELECT target FROM message_to WHERE message_id = ? AND NOT {DIRECT}", (mid,))]
        if indirect:
            acked = {a for (a,) in conn.execute(
                "SELECT recipient FROM receipts WHERE message_id = ? AND state = 3", (mid,))}
            reached: set[str] = set()
            for target in indirect:
                if target not in audiences:
                    audiences[target] = _audience(conn, target)
                reached |= audiences[target]
            reached.discard(sender)
            if not (reached <= acked if reached else acked):
                continue
        closed.append({"id": mid, "from": sender, "subject": subject, "created_at": created})
    return closed


def thread_links(conn: sqlite3.Connection, ids: list[str]) -> list[tuple[str, str, str | None]]:
    """(id, thread_id, replies_to) of every stored message in the threads of ``ids``: all
    that can point at one of them (a reply shares its parent's thread)."""
    out: list[tuple[str, str, str | None]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        out += conn.execute(
            "SELECT m.id, m.thread_id, json_extract(d.data, '$.replies_to') FROM messages m "
            "JOIN records d ON d.id = m.id WHERE m.thread_id IN "
            f"(SELECT thread_id FROM messages WHERE id IN ({marks})) ORDER BY m.id",
            chunk).fetchall()
    return sorted(set(out))


def _audience(conn: sqlite3.Connection, target: str) -> set[str]:
    if target == "*":
        rows = conn.execute("SELECT id FROM agents WHERE registered = 1")
    elif target.startswith("@"):
        rows = conn.execute("SELECT id FROM agents WHERE registered = 1 AND grp = ?", (target[1:],))
    else:
        rows = conn.execute("SELECT agent FROM memberships WHERE channel = ? AND joined = 1",
                            (target[1:],))
    return {r[0] for r in rows}


def compacted(conn: sqlite3.Connection, path: str, dropped: list[str],
              kept: list[tuple[str, int]]) -> None:
    """Bookkeeping when compaction rewrites segment ``path``: dropped records leave the index
    (a rebuild would not see them either), kept ones get their new line numbers, and the
    segment's fold position is forgotten so the next refresh reads the new blob whole."""
    conn.executemany("DELETE FROM records WHERE id = ? AND path = ?", [(i, path) for i in dropped])
    conn.executemany("UPDATE records SET line = ? WHERE id = ? AND path = ?",
                     [(line, rid, path) for rid, line in kept])
    conn.execute("DELETE FROM segments WHERE path = ?", (path,))


def short_ids(conn: sqlite3.Connection, ids: list[str], min_chars: int = 4) -> dict[str, str]:
    """The shortest prefix of each id that no other record shares (>= ``min_chars`` after
    the id prefix), found from its two neighbours in id order."""
    out = {}
    for rid in ids:
        head = rid.partition("-")[0]
        before = conn.execute("SELECT max(id) FROM records WHERE id < ?", (rid,)).fetchone()[0]
        after = conn.execute("SELECT min(id) FROM records WHERE id > ?", (rid,)).fetchone()[0]
        shared = max(_shared(rid, before), _shared(rid, after))
        out[rid] = rid[:max(len(head) + 1 + min_chars, shared + 1)]
    return out


def _shared(a: str, b: str | None) -> int:
    if not b:
        return 0
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
