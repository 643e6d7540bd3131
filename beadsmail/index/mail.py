"""Messages, recipients, per-recipient receipts and deletions, folded from records.

Order-independent by construction: a message row is inserted once unless its id
was deleted; a receipt only moves forward (delivered < read < acked) and keeps
the earliest read/ack times; a tombstone or purge deletes its targets and is
remembered, so a message arriving after its deletion is never shown.
Addressing (``#channel``, ``@group``, ``*``) is stored as written and resolved
at query time, so a late registration or join never depends on arrival order.
"""

from __future__ import annotations

import json
import sqlite3

DDL = """
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, clock INTEGER NOT NULL, created_at TEXT NOT NULL,
    sender TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL, priority INTEGER NOT NULL,
    type TEXT NOT NULL, thread_id TEXT NOT NULL, reply_to TEXT, ephemeral INTEGER NOT NULL,
    action TEXT NOT NULL, data TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_thread ON messages(thread_id, clock);
CREATE INDEX IF NOT EXISTS messages_sender ON messages(sender, clock);
CREATE TABLE IF NOT EXISTS message_to (
    message_id TEXT NOT NULL, target TEXT NOT NULL,
    PRIMARY KEY (message_id, target)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS message_to_target ON message_to(target, message_id);
CREATE TABLE IF NOT EXISTS receipts (
    message_id TEXT NOT NULL, recipient TEXT NOT NULL, state INTEGER NOT NULL,
    read_at TEXT, acked_at TEXT,
    PRIMARY KEY (message_id, recipient)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deleted (id TEXT PRIMARY KEY, by_record TEXT NOT NULL) WITHOUT ROWID;
"""
TABLES = ("messages", "message_to", "receipts", "deleted")
STATES = {"delivered": 1, "read": 2, "acked": 3}
STATE_NAMES = {0: "unread", 1: "delivered", 2: "read", 3: "acked"}


def fold(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    _messages(conn, by_kind.get("message", ()))
    _receipts(conn, by_kind.get("receipt", ()))
    deletions = [(t, r["id"]) for r in by_kind.get("tombstone", ()) for t in [r["target"]]]
    deletions += [(t, r["id"]) for r in by_kind.get("purge", ()) for t in r["targets"]]
    _delete(conn, deletions)


def _messages(conn: sqlite3.Connection, records) -> None:
    rows, targets = [], []
    for r in records:
        rows.append((r["id"], r["clock"], r["created_at"], r["from"], r["subject"], r["body"],
                     r["priority"], r["type"], r["thread_id"], r["reply_to"], int(r["ephemeral"]),
                     r["action_requested"],
                     json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False)))
        targets += [(r["id"], t) for t in r["to"]]
    if not rows:
        return
    conn.executemany(
        "INSERT OR IGNORE INTO messages SELECT ?,?,?,?,?,?,?,?,?,?,?,?,? "
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
                     r["created_at"] if state == 3 else None))
    conn.executemany(
        "INSERT INTO receipts SELECT ?1, ?2, ?3, ?4, ?5 "
        "WHERE NOT EXISTS (SELECT 1 FROM deleted WHERE id = ?1) "
        "ON CONFLICT (message_id, recipient) DO UPDATE SET state = max(state, excluded.state), "
        "read_at = coalesce(min(read_at, excluded.read_at), read_at, excluded.read_at), "
        "acked_at = coalesce(min(acked_at, excluded.acked_at), acked_at, excluded.acked_at)",
        rows)


def _delete(conn: sqlite3.Connection, deletions: list[tuple[str, str]]) -> None:
    if not deletions:
        return
    conn.executemany("INSERT INTO deleted VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
                     "SET by_record = min(by_record, excluded.by_record)", deletions)
    ids = [(t,) for t, _ in deletions]
    conn.executemany("DELETE FROM messages WHERE id = ?", ids)
    conn.executemany("DELETE FROM message_to WHERE message_id = ?", ids)
    conn.executemany("DELETE FROM receipts WHERE message_id = ?", ids)
