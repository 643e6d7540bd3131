"""Agents, channels, memberships, contacts and dead letters, folded from records.

Every row is order-independent by construction:

- An agent's profile is last-writer-wins by ``(rank, clock, record id)``, where
  register/update/unregister records rank above heartbeats: a heartbeat only
  stands in for a profile until a real profile record arrives, so a heartbeat
  written on a clone that had not yet seen a status change never undoes it.
  ``last_seen`` is the maximum over all of an agent's records.
- Liveness counts every record an agent wrote as itself, not only heartbeats:
  ``actor_seen`` (kept by a trigger on ``records``, see ``KEYS``) holds each
  actor's newest ``created_at``, and an agent's ``last_seen`` as read is the
  newest of its folded ``last_seen``, its ``actor_seen`` and its local heartbeat.
- Channels, memberships and contacts are last-writer-wins by ``(clock, id)``;
  a channel's creator, and the group it belongs to, come from its earliest
  create record (ties broken by creator, then group).
- Dead letters are derived from ``message_to`` (the mail fold's recipients) at
  query time, so purged messages leave no trace behind.
- ``dead_resolved`` holds (message, recipient) pairs cleared from the dead-letter
  queue, keeping the earliest resolution.

``heartbeats`` is local, not folded: the latest liveness seen on this machine
(and when a heartbeat was last committed), so ``bd agent heartbeat`` (and the
sign of life any other command gives, see ``agents.note_alive``) costs one
small write. A rebuilt index forgets it and falls back to committed ``last_seen``.
"""

from __future__ import annotations

import json
import sqlite3

DDL = """
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY, name TEXT, role TEXT, grp TEXT, tier INTEGER, model TEXT,
    status TEXT, registered INTEGER NOT NULL, registered_at TEXT, updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL, last_seen TEXT, rank INTEGER NOT NULL, clock INTEGER NOT NULL,
    rid TEXT NOT NULL, details TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY, description TEXT, created_by TEXT, created_at TEXT,
    active INTEGER NOT NULL, clock INTEGER NOT NULL, rid TEXT NOT NULL, grp TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memberships (
    channel TEXT NOT NULL, agent TEXT NOT NULL, joined INTEGER NOT NULL, at TEXT NOT NULL,
    clock INTEGER NOT NULL, rid TEXT NOT NULL, PRIMARY KEY (channel, agent)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contacts (
    a TEXT NOT NULL, b TEXT NOT NULL, allowed INTEGER NOT NULL, clock INTEGER NOT NULL,
    rid TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_resolved (
    message_id TEXT NOT NULL, recipient TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL,
    note TEXT, clock INTEGER NOT NULL, rid TEXT NOT NULL,
    PRIMARY KEY (message_id, recipient)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS actor_seen (actor TEXT PRIMARY KEY, seen_at TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS heartbeats (
    agent TEXT PRIMARY KEY, seen_at TEXT NOT NULL, committed_at TEXT) WITHOUT ROWID;
"""
# Each actor's newest record (``actor_seen``), kept by a trigger on ``records`` as they are
# inserted, and filled by one GROUP BY when a build creates it after loading them.
KEYS = """
CREATE TRIGGER IF NOT EXISTS records_actor_seen AFTER INSERT ON records BEGIN
    INSERT INTO actor_seen VALUES (new.actor, new.created_at) ON CONFLICT (actor)
        DO UPDATE SET seen_at = excluded.seen_at WHERE excluded.seen_at > actor_seen.seen_at;
END;
INSERT OR REPLACE INTO actor_seen SELECT actor, max(created_at) FROM records GROUP BY actor;
"""
LOADED: dict = {}  # (a build folds every kind of this domain)
LOADED_INTO: dict = {}
# Indexes that only queries read: a build creates them after the fold.
QUERY_INDEXES = """
CREATE INDEX IF NOT EXISTS agents_group ON agents(grp);
CREATE INDEX IF NOT EXISTS memberships_agent ON memberships(agent, channel);
"""
TABLES = ("agents", "channels", "memberships", "contacts", "dead_resolved")
ADDRESSED = "(SELECT DISTINCT target FROM message_to WHERE target <> '*')"
LATER = "(excluded.clock > {t}.clock OR (excluded.clock = {t}.clock AND excluded.rid > {t}.rid))"
AGENT_COLUMNS = ("id", "name", "role", "group", "tier", "model", "status", "registered",
                 "registered_at", "updated_at", "updated_by", "last_seen", "details")


def fold(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    _agents(conn, by_kind.get("agent", ()))
    _channels(conn, by_kind.get("channel", ()))
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
    for r in by_kind.get("dead_letter", ()):
        conn.execute(
            "INSERT INTO dead_resolved VALUES (?,?,?,?,?,?,?) ON CONFLICT (message_id, recipient) "
            "DO UPDATE SET "
            "by=excluded.by, at=excluded.at, note=excluded.note, clock=excluded.clock, "
            "rid=excluded.rid WHERE (excluded.clock, excluded.rid) < "
            "(dead_resolved.clock, dead_resolved.rid)",
            (r["message"], r["recipient"], r["actor"], r["created_at"], r.get("note"),
             r["clock"], r["id"]))


def _agents(conn: sqlite3.Connection, records) -> None:
    for r in records:
        registered = 0 if r["op"] == "unregister" else 1
        rank = 0 if r["op"] == "heartbeat" else 1
        seen = r.get("last_seen")
        conn.execute(
            "INSERT INTO agents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET "
            "name=excluded.name, role=excluded.role, grp=excluded.grp, tier=excluded.tier, "
            "details=excluded.details, "
            "model=excluded.model, status=excluded.status, registered=excluded.registered, "
            "updated_at=excluded.updated_at, updated_by=excluded.updated_by, rank=excluded.rank, "
            "clock=excluded.clock, rid=excluded.rid "
            "WHERE (excluded.rank, excluded.clock, excluded.rid) > (agents.rank, agents.clock, agents.rid)",
            (r["agent"], r.get("name"), r.get("role"), r.get("group"), r.get("tier"), r.get("model"),
             r.get("status"), registered, r["created_at"] if r["op"] == "register" else None,
             r["created_at"], r["actor"], seen, rank, r["clock"], r["id"],
             json.dumps(r["details"], sort_keys=True) if r.get("details") else None))
        if seen:
            conn.execute("UPDATE agents SET last_seen = ? WHERE id = ? AND "
                         "(last_seen IS NULL OR last_seen < ?)", (seen, r["agent"], seen))
        if r["op"] == "register":  # the earliest registration, whatever the arrival order
            conn.execute("UPDATE agents SET registered_at = ? WHERE id = ? AND "
                         "(registered_at IS NULL OR registered_at > ?)",
                         (r["created_at"], r["agent"], r["created_at"]))


def _channels(conn: sqlite3.Connection, records) -> None:
    for r in records:
        group = r.get("group") if r["op"] == "create" else None
        conn.execute(
            "INSERT INTO channels VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET "
            "description=excluded.description, active=excluded.active, "
            "clock=excluded.clock, rid=excluded.rid WHERE " + LATER.format(t="channels"),
            (r["name"], r.get("description"), r["actor"], r["created_at"],
             int(r["op"] == "create"), r["clock"], r["id"], group))
        if r["op"] == "create":  # creator and group = the earliest create record's
            conn.execute("UPDATE channels SET created_by = ?1, created_at = ?2, grp = ?4 "
                         "WHERE name = ?3 AND (created_at > ?2 OR (created_at = ?2 AND "
                         "(created_by > ?1 OR (created_by = ?1 AND "
                         "coalesce(grp, '') > coalesce(?4, '')))))",
                         (r["actor"], r["created_at"], r["name"], group))


# -- agents -------------------------------------------------------------------

_AGENT_SELECT = ("SELECT a.id, a.name, a.role, a.grp, a.tier, a.model, a.status, a.registered, "
                 "a.registered_at, a.updated_at, a.updated_by, "
                 "max(coalesce(a.last_seen, ''), coalesce(h.seen_at, ''), coalesce(s.seen_at, '')), "
                 "a.details FROM agents a LEFT JOIN heartbeats h ON h.agent = a.id "
                 "LEFT JOIN actor_seen s ON s.actor = a.id")


def _agent_dict(row) -> dict:
    out = dict(zip(AGENT_COLUMNS, row, strict=True))
    out["registered"] = bool(out["registered"])
    out["last_seen"] = out["last_seen"] or None
    out["details"] = json.loads(out["details"]) if out["details"] else None
    return out


def profile_records(conn: sqlite3.Connection, agent_ids: list[str]) -> dict[str, str]:
    """The record that set each agent's profile as shown (for its signature)."""
    out: dict[str, str] = {}
    for start in range(0, len(agent_ids), 500):
        chunk = agent_ids[start:start + 500]
        out.update(conn.execute(f"SELECT id, rid FROM agents WHERE id IN "
                                f"({','.join('?' * len(chunk))})", chunk).fetchall())
    return out


def registered_role(conn: sqlite3.Connection, identity: str) -> str | None:
    row = conn.execute("SELECT role FROM agents WHERE id = ? AND registered = 1",
                       (identity,)).fetchone()
    return row[0] if row else None


def anyone_registered(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM agents WHERE registered = 1 LIMIT 1").fetchone() is not None


def agent(conn: sqlite3.Connection, agent_id: str) -> dict | None:
    """One agent's profile (registered or not), ``last_seen`` including local heartbeats."""
    row = conn.execute(_AGENT_SELECT + " WHERE a.id = ?", (agent_id,)).fetchone()
    return _agent_dict(row) if row else None


def agents(conn: sqlite3.Connection, include_unregistered: bool = False,
           group: str | None = None) -> list[dict]:
    sql, args = _AGENT_SELECT + " WHERE 1", []
    if not include_unregistered:
        sql += " AND a.registered = 1"
    if group is not None:
        sql += " AND a.grp = ?"
        args.append(group)
    return [_agent_dict(r) for r in conn.execute(sql + " ORDER BY a.id", args)]


def groups(conn: sqlite3.Connection) -> list[str]:
    """Groups with at least one registered agent."""
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT grp FROM agents WHERE registered = 1 AND grp IS NOT NULL ORDER BY grp")]


def known_groups(conn: sqlite3.Connection) -> list[str]:
    """Every group the store names: of an agent (registered now or once), a channel or a
    task (a message's sender group was its sender's, so it is among the agents')."""
    return [r[0] for r in conn.execute(
        "SELECT grp FROM agents WHERE grp IS NOT NULL UNION SELECT grp FROM channels "
        "WHERE grp IS NOT NULL UNION SELECT grp FROM tasks WHERE grp IS NOT NULL ORDER BY 1")]


def group_of(conn: sqlite3.Connection, agent_id: str) -> str | None:
    """The group an agent is registered in now (None: unregistered, or in no group)."""
    row = conn.execute("SELECT grp FROM agents WHERE id = ? AND registered = 1",
                       (agent_id,)).fetchone()
    return row[0] if row else None


def local_heartbeat(conn: sqlite3.Connection, agent_id: str) -> tuple[str, str | None] | None:
    row = conn.execute("SELECT seen_at, committed_at FROM heartbeats WHERE agent = ?",
                       (agent_id,)).fetchone()
    return (row[0], row[1]) if row else None


def committed_seen(conn: sqlite3.Connection, agent_id: str) -> str | None:
    """The newest liveness time committed to the store for an agent, as folded so far: its
    newest heartbeat or profile ``last_seen``, or the newest record it wrote itself."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT last_seen FROM agents WHERE id = ?1), ''), "
        "coalesce((SELECT seen_at FROM actor_seen WHERE actor = ?1), ''))", (agent_id,)).fetchone()
    return row[0] or None


def touch(conn: sqlite3.Connection, agent_id: str, seen_at: str, committed_at: str | None) -> None:
    """Record a heartbeat seen here (and, if given, when one was last committed)."""
    conn.execute(
        "INSERT INTO heartbeats VALUES (?, ?, ?) ON CONFLICT (agent) DO UPDATE SET "
        "seen_at = max(seen_at, excluded.seen_at), "
        "committed_at = coalesce(max(committed_at, excluded.committed_at), committed_at, "
        "excluded.committed_at)", (agent_id, seen_at, committed_at))


# -- channels and contacts ----------------------------------------------------

CHANNEL_COLUMNS = ("name", "description", "created_by", "created_at", "active", "group")
_CHANNEL_SELECT = "SELECT name, description, created_by, created_at, active, grp FROM channels "


def channel(conn: sqlite3.Connection, name: str) -> dict | None:
    row = conn.execute(_CHANNEL_SELECT + "WHERE name = ?", (name,)).fetchone()
    return dict(zip(CHANNEL_COLUMNS, row, strict=True)) if row else None


def channels(conn: sqlite3.Connection) -> list[dict]:
    """Channels created and not deleted."""
    rows = conn.execute(_CHANNEL_SELECT + "WHERE active = 1 ORDER BY name")
    return [dict(zip(CHANNEL_COLUMNS, r, strict=True)) for r in rows]


def members(conn: sqlite3.Connection, name: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT agent FROM memberships WHERE channel = ? AND joined = 1 ORDER BY agent", (name,))]


def channels_of(conn: sqlite3.Connection, agent_id: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT channel FROM memberships WHERE agent = ? AND joined = 1 ORDER BY channel",
        (agent_id,))]


# posts a group sees in a shared channel: its own agents' and those of agents in no group
_IN_GROUP = " AND (?2 IS NULL OR m.sender_group IS NULL OR m.sender_group = ?2)"


def channel_stats(conn: sqlite3.Connection, name: str,
                  group: str | None = None) -> tuple[int, str | None]:
    """How many messages a channel holds (as ``group`` sees it), and when the last came."""
    row = conn.execute("SELECT count(*), max(m.created_at) FROM message_to t JOIN messages m "
                       "ON m.id = t.message_id WHERE t.target = ?1" + _IN_GROUP,
                       ("#" + name, group)).fetchone()
    return row[0], row[1]


def channel_messages(conn: sqlite3.Connection, name: str, limit: int,
                     group: str | None = None) -> list[str]:
    """The JSON of a channel's newest ``limit`` messages (as ``group`` sees it), oldest first."""
    rows = conn.execute(  # the text is looked up for the ``limit`` rows kept only
        "SELECT (SELECT data FROM records WHERE id = x.id) FROM ("
        "SELECT m.id, m.clock FROM message_to t JOIN messages m ON m.id = t.message_id "
        "WHERE t.target = ?1" + _IN_GROUP + " ORDER BY m.clock DESC, m.id DESC LIMIT ?3) x "
        "ORDER BY x.clock, x.id", ("#" + name, group, limit))
    return [r[0] for r in rows]


def contacts(conn: sqlite3.Connection, agent_id: str | None = None) -> list[tuple[str, str]]:
    sql, args = "SELECT a, b FROM contacts WHERE allowed = 1", []
    if agent_id:
        sql += " AND (a = ? OR b = ?)"
        args = [agent_id, agent_id]
    return [(r[0], r[1]) for r in conn.execute(sql + " ORDER BY a, b", args)]


def contact_allowed(conn: sqlite3.Connection, a: str, b: str) -> bool:
    return conn.execute("SELECT 1 FROM contacts WHERE a = ? AND b = ? AND allowed = 1",
                        (a, b)).fetchone() is not None


# -- mail as the coordination views see it ------------------------------------

def pending_counts(conn: sqlite3.Connection, agent_id: str, reach: list[str]) -> tuple[int, int]:
    """(unread, open) mail of an agent, as ``bd mail inbox`` lists it: sent to its id, or to
    ``reach`` (``*``, ``@group``, ``#channel``) by someone else; unread = not yet read,
    open = not yet acked."""
    marks = ",".join("?" * len(reach))
    row = conn.execute(
        "WITH mine(id) AS (SELECT message_id FROM message_to WHERE target = ?1 UNION "
        "SELECT t.message_id FROM message_to t JOIN messages s ON s.id = t.message_id "
        f"WHERE t.target IN ({marks}) AND s.sender <> ?1) "
        "SELECT coalesce(sum(coalesce(r.state, 0) < 2), 0), coalesce(sum(coalesce(r.state, 0) < 3), 0) "
        "FROM mine LEFT JOIN receipts r ON r.message_id = mine.id AND r.recipient = ?1",
        (agent_id, *reach)).fetchone()
    return row[0], row[1]


def dead_targets(conn: sqlite3.Connection, live_channels: list[str]) -> list[tuple[str, str]]:
    """Recipients written to that cannot receive now: ``(target, reason)``.

    Without any registered agent there is no roster to miss, so nothing is dead.
    """
    if not anyone_registered(conn):
        return []
    out = []
    for target, registered in conn.execute(
            f"SELECT t.target, a.registered FROM {ADDRESSED} t LEFT JOIN agents a "
            "ON a.id = t.target WHERE substr(t.target, 1, 1) NOT IN ('#', '@') AND "
            "(a.id IS NULL OR a.registered = 0 OR a.status = 'stopped') ORDER BY t.target"):
        reason = "unknown" if registered is None else "unregistered" if not registered else "stopped"
        out.append((target, reason))
    out += [(r[0], "empty group") for r in conn.execute(
        f"SELECT target FROM {ADDRESSED} WHERE substr(target, 1, 1) = '@' AND NOT EXISTS "
        "(SELECT 1 FROM agents WHERE registered = 1 AND '@' || grp = target) ORDER BY target")]
    live = {"#" + c for c in live_channels}
    out += [(r[0], "no channel") for r in conn.execute(
        f"SELECT target FROM {ADDRESSED} WHERE substr(target, 1, 1) = '#' ORDER BY target")
        if r[0] not in live]
    return out


def undelivered(conn: sqlite3.Connection, target: str) -> list[dict]:
    """Messages to ``target`` it never received and nobody resolved, oldest first."""
    rows = conn.execute(
        "SELECT m.id, m.sender, m.subject, m.priority, m.created_at FROM message_to t "
        "JOIN messages m ON m.id = t.message_id WHERE t.target = ?1 AND NOT EXISTS "
        "(SELECT 1 FROM receipts r WHERE r.message_id = t.message_id AND r.recipient = ?1) "
        "AND NOT EXISTS (SELECT 1 FROM dead_resolved d WHERE d.message_id = t.message_id "
        "AND d.recipient = ?1) ORDER BY m.clock, m.id", (target,))
    return [dict(zip(("message", "from", "subject", "priority", "created_at"), r, strict=True))
            for r in rows]


def message_targets(conn: sqlite3.Connection, message_id: str) -> tuple[str, list[str]] | None:
    """A message's sender and recipients, or None if it is unknown or deleted."""
    row = conn.execute("SELECT sender FROM messages WHERE id = ?", (message_id,)).fetchone()
    if row is None:
        return None
    targets = [r[0] for r in conn.execute(
        "SELECT target FROM message_to WHERE message_id = ? ORDER BY target", (message_id,))]
    return row[0], targets


def review_queue_depth(conn: sqlite3.Connection) -> int:
    """Tasks waiting in ``review`` (0 while the task board has no table yet)."""
    try:
        return conn.execute("SELECT count(*) FROM tasks WHERE status = 'review' AND deleted = 0"
                            ).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


# -- audit ---------------------------------------------------------------------

def audit_records(conn: sqlite3.Connection, actor: str | None = None, since: str | None = None,
                  kinds: tuple[str, ...] | None = None):
    """Records newest first (by clock), optionally by actor, time and kind: (JSON, path, line)."""
    sql, args = "SELECT data, path, line FROM records WHERE 1", []
    if actor is not None:
        sql += " AND actor = ?"
        args.append(actor)
    if since is not None:
        sql += " AND created_at >= ?"
        args.append(since)
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        args += kinds
    yield from conn.execute(sql + " ORDER BY clock DESC, id DESC", args)
