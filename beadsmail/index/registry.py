"""Agents, channels, memberships and contacts, folded last-writer-wins.

Each row keeps the ``(clock, record id)`` of the record that set it and is only
replaced by a record that sorts later, so the result does not depend on arrival
order. Agent records carry the whole profile after the change.
"""

from __future__ import annotations

import sqlite3

DDL = """
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY, name TEXT, role TEXT, grp TEXT, tier INTEGER, model TEXT,
    status TEXT, registered INTEGER NOT NULL, registered_at TEXT, updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL, clock INTEGER NOT NULL, rid TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS agents_group ON agents(grp);
CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY, description TEXT, created_by TEXT, created_at TEXT,
    active INTEGER NOT NULL, clock INTEGER NOT NULL, rid TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memberships (
    channel TEXT NOT NULL, agent TEXT NOT NULL, joined INTEGER NOT NULL, at TEXT NOT NULL,
    clock INTEGER NOT NULL, rid TEXT NOT NULL, PRIMARY KEY (channel, agent)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_agent ON memberships(agent, channel);
CREATE TABLE IF NOT EXISTS contacts (
    a TEXT NOT NULL, b TEXT NOT NULL, allowed INTEGER NOT NULL, clock INTEGER NOT NULL,
    rid TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;
"""
TABLES = ("agents", "channels", "memberships", "contacts")
LATER = "(excluded.clock > {t}.clock OR (excluded.clock = {t}.clock AND excluded.rid > {t}.rid))"


def fold(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    for r in by_kind.get("agent", ()):
        registered = 0 if r["op"] == "unregister" else 1
        conn.execute(
            "INSERT INTO agents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET "
            "name=excluded.name, role=excluded.role, grp=excluded.grp, tier=excluded.tier, "
            "model=excluded.model, status=excluded.status, registered=excluded.registered, "
            "updated_at=excluded.updated_at, updated_by=excluded.updated_by, "
            "clock=excluded.clock, rid=excluded.rid WHERE " + LATER.format(t="agents"),
            (r["agent"], r.get("name"), r.get("role"), r.get("group"), r.get("tier"), r.get("model"),
             r.get("status"), registered, r["created_at"] if r["op"] == "register" else None,
             r["created_at"], r["actor"], r["clock"], r["id"]))
        if r["op"] == "register":  # the earliest registration, whatever the arrival order
            conn.execute("UPDATE agents SET registered_at = ? WHERE id = ? AND "
                         "(registered_at IS NULL OR registered_at > ?)",
                         (r["created_at"], r["agent"], r["created_at"]))
    for r in by_kind.get("channel", ()):
        conn.execute(
            "INSERT INTO channels VALUES (?,?,?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET "
            "description=excluded.description, active=excluded.active, "
            "clock=excluded.clock, rid=excluded.rid WHERE " + LATER.format(t="channels"),
            (r["name"], r.get("description"), r["actor"], r["created_at"],
             int(r["op"] == "create"), r["clock"], r["id"]))
        if r["op"] == "create":  # creator = the earliest create record
            conn.execute("UPDATE channels SET created_by = ?, created_at = ? WHERE name = ? AND "
                         "(created_at > ? OR (created_at = ? AND created_by > ?))",
                         (r["actor"], r["created_at"], r["name"], r["created_at"],
                          r["created_at"], r["actor"]))
    for r in by_kind.get("membership", ()):
        conn.execute(
            "INSERT INTO memberships VALUES (?,?,?,?,?,?) ON CONFLICT (channel, agent) DO UPDATE SET "
            "joined=excluded.joined, at=excluded.at, clock=excluded.clock, rid=excluded.rid "
            "WHERE " + LATER.format(t="memberships"),
            (r["channel"], r["agent"], int(r["op"] == "join"), r["created_at"], r["clock"], r["id"]))
    for r in by_kind.get("contact", ()):
        conn.execute(
            "INSERT INTO contacts VALUES (?,?,?,?,?) ON CONFLICT (a, b) DO UPDATE SET "
            "allowed=excluded.allowed, clock=excluded.clock, rid=excluded.rid "
            "WHERE " + LATER.format(t="contacts"),
            (r["a"], r["b"], int(r["op"] == "allow"), r["clock"], r["id"]))


def registered_role(conn: sqlite3.Connection, identity: str) -> str | None:
    row = conn.execute("SELECT role FROM agents WHERE id = ? AND registered = 1",
                       (identity,)).fetchone()
    return row[0] if row else None


def anyone_registered(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM agents WHERE registered = 1 LIMIT 1").fetchone() is not None
