"""Tasks, their moves, conflicts and comments, folded by replaying each task.

A task is its creation record (version 1) plus every ``task_event`` naming it.
Events are kept once each in ``task_events`` (even before their task arrives).
Whenever a task's creation or any of its events is new, the task is replayed
from scratch: its events sorted by ``(clock, id)``, each applied only if its
``expected_version`` equals the task's version at that point (which then goes up
by one), otherwise recorded in ``task_conflicts`` with the actual version and
who had moved the task there. The rows of ``tasks``, ``task_history`` and
``task_conflicts`` are therefore a function of the set of records alone: two
clones that raced on one version converge on the same winner (the smaller
``(clock, id)``), and an index kept up to date incrementally equals a rebuild.
After a ``delete`` event no further event applies (each becomes a conflict).
Comments are immutable rows inserted once.

The board's posts to ``#review-queue`` and ``#review-log`` follow the replay:
a post is shown only while the move it announces is in the task's applied
history and, as applied, enters or leaves review (``_posts_follow``); a move
that lost a race between clones leaves no post behind. Whether a post shows is
a function of the records alone, like the rest, and a task is replayed when one
of its posts arrives too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from beadsmail.index import mail
from beadsmail.signing import overall, status_of

DDL = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, assigned_to TEXT, parent TEXT, grp TEXT,
    sort_order INTEGER NOT NULL, version INTEGER NOT NULL, deleted INTEGER NOT NULL,
    clock INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_events (
    id TEXT PRIMARY KEY, task TEXT NOT NULL, clock INTEGER NOT NULL,
    data TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS task_events_task ON task_events(task, clock, id);
CREATE TABLE IF NOT EXISTS task_history (
    task TEXT NOT NULL, version INTEGER NOT NULL, event TEXT NOT NULL, op TEXT NOT NULL,
    actor TEXT NOT NULL, at TEXT NOT NULL, from_status TEXT, to_status TEXT,
    changes TEXT NOT NULL, PRIMARY KEY (task, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS task_conflicts (
    event TEXT PRIMARY KEY, task TEXT NOT NULL, op TEXT NOT NULL, actor TEXT NOT NULL,
    at TEXT NOT NULL, clock INTEGER NOT NULL, expected_version INTEGER NOT NULL,
    actual_version INTEGER NOT NULL, moved_by TEXT NOT NULL, reason TEXT NOT NULL,
    changes TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS task_conflicts_task ON task_conflicts(task, clock);
CREATE TABLE IF NOT EXISTS task_comments (
    id TEXT PRIMARY KEY, task TEXT NOT NULL, actor TEXT NOT NULL, created_at TEXT NOT NULL,
    clock INTEGER NOT NULL, content TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS task_comments_task ON task_comments(task, clock, id);
"""
# The board's posts about a task, by task (a partial index of records: messages naming one).
KEYS = """
CREATE INDEX IF NOT EXISTS records_task_posts ON records(json_extract(data, '$.metadata.task'))
    WHERE kind = 'message' AND json_extract(data, '$.metadata.task') IS NOT NULL;
"""
LOADED: dict = {}  # (a build folds every kind of this domain)
LOADED_INTO: dict = {}
# Indexes that only queries read: a build creates them after the fold.
QUERY_INDEXES = """
CREATE INDEX IF NOT EXISTS tasks_listing ON tasks(
    deleted, sort_order, clock DESC, id DESC, status, assigned_to, grp, data);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status, deleted, grp);
CREATE INDEX IF NOT EXISTS tasks_parent ON tasks(parent);
"""
TABLES = ("tasks", "task_events", "task_history", "task_conflicts", "task_comments")
STATUSES = ("backlog", "todo", "in_progress", "review", "done")
CHANGE_FIELDS = ("status", "assigned_to", "title", "description", "priority", "sort_order",
                 "parent", "group")
COLUMNS = ("id", "title", "description", "priority", "status", "assigned_to", "parent", "group",
           "sort_order", "version", "deleted", "created_by", "created_at", "clock",
           "updated_by", "updated_at", "verified")


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fold(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    events = by_kind.get("task_event", ())
    if events:
        conn.executemany("INSERT OR IGNORE INTO task_events VALUES (?, ?, ?, ?)",
                         [(r["id"], r["task"], r["clock"], _dumps(r)) for r in events])
    comments = by_kind.get("comment", ())
    if comments:
        conn.executemany("INSERT OR IGNORE INTO task_comments VALUES (?, ?, ?, ?, ?, ?)",
                         [(r["id"], r["task"], r["actor"], r["created_at"], r["clock"],
                           r["content"]) for r in comments])
    created = {r["id"]: r for r in by_kind.get("task", ())}
    posted = {r["metadata"]["task"] for r in by_kind.get("message", ()) if is_post(r)}
    for task_id in sorted(created.keys() | {r["task"] for r in events} | posted):
        _replay(conn, task_id, created.get(task_id))


def _replay(conn: sqlite3.Connection, task_id: str, creation: dict | None) -> None:
    if creation is None:
        row = conn.execute("SELECT data FROM records WHERE id = ? AND kind = 'task'",
                           (task_id,)).fetchone()
        if row is None:  # its events wait in task_events until the creation arrives
            return
        creation = json.loads(row[0])
    state = _initial(creation)
    conn.execute("DELETE FROM task_history WHERE task = ?", (task_id,))
    conn.execute("DELETE FROM task_conflicts WHERE task = ?", (task_id,))
    history = [(task_id, 1, task_id, "create", creation["actor"], creation["created_at"], None,
                state["status"], _dumps(_changes(creation)))]
    conflicts, signed = [], []
    rows = conn.execute("SELECT data FROM task_events WHERE task = ? ORDER BY clock, id",
                        (task_id,))
    for event in map(json.loads, [r[0] for r in rows]):
        reason = _refusal(state, event)
        if reason:
            conflicts.append((event["id"], task_id, event["op"], event["actor"],
                              event["created_at"], event["clock"], event["expected_version"],
                              state["version"], state["updated_by"], reason,
                              _dumps(_changes(event))))
            continue
        before = state["status"]
        _apply(state, event)
        signed.append(status_of(event))
        history.append((task_id, state["version"], event["id"], event["op"], event["actor"],
                        event["created_at"], before, state["status"], _dumps(_changes(event))))
    state["verified"] = overall([status_of(creation), *signed])  # (every applied record)
    conn.executemany("INSERT INTO task_history VALUES (?,?,?,?,?,?,?,?,?)", history)
    _posts_follow(conn, task_id, history)
    conn.executemany("INSERT INTO task_conflicts VALUES (?,?,?,?,?,?,?,?,?,?,?)", conflicts)
    conn.execute("INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?)",
                 (task_id, state["status"], state["assigned_to"], state["parent"], state["group"],
                  state["sort_order"], state["version"], int(state["deleted"]), state["clock"],
                  json.dumps({c: state[c] for c in COLUMNS}, separators=(",", ":"),
                             ensure_ascii=False)))


def _initial(r: dict) -> dict:
    return {"id": r["id"], "title": r["title"], "description": r.get("description", ""),
            "priority": r["priority"], "status": r["status"],
            "assigned_to": r.get("assigned_to"), "parent": r.get("parent"),
            "group": r.get("group"), "sort_order": r.get("sort_order", 0), "version": 1,
            "deleted": False, "created_by": r["actor"], "created_at": r["created_at"],
            "clock": r["clock"], "updated_by": r["actor"], "updated_at": r["created_at"]}


def _changes(r: dict) -> dict:
    return {k: r[k] for k in CHANGE_FIELDS if k in r}


def _refusal(state: dict, event: dict) -> str | None:
    if state["deleted"]:
        return "deleted"
    if event["expected_version"] != state["version"]:
        return "version"
    return None


def _apply(state: dict, event: dict) -> None:
    if event["op"] == "delete":
        state["deleted"] = True
    else:
        state.update(_changes(event))
    state["version"] += 1
    state["updated_by"] = event["actor"]
    state["updated_at"] = event["created_at"]


# -- review-channel posts follow the fold ------------------------------------------

POST_CHANNELS = ("#review-queue", "#review-log")
POSTS_OF = ("SELECT data FROM records WHERE kind = 'message' "
            "AND json_extract(data, '$.metadata.task') = ?")


def is_post(message: dict) -> bool:
    """Whether a message is the board's post about a move (see ``_posts_follow``)."""
    meta = message.get("metadata")
    return (message.get("type") == "notification" and len(message.get("to", ())) == 1
            and message["to"][0] in POST_CHANNELS and isinstance(meta, dict)
            and isinstance(meta.get("task"), str) and "to_status" in meta)


def _crosses(channel: str, before: str | None, after: str) -> bool:
    if channel == "#review-queue":
        return after == "review" and before != "review"
    return before == "review" and after != "review"


def _posts_follow(conn: sqlite3.Connection, task_id: str, history: list[tuple]) -> None:
    """Show the task's review-channel posts whose move the fold applied; hide the others.

    A post names the event it announces (``metadata.event``; posts written before
    that name the version the move made, and are matched by it, its writer and its
    target status). It stays visible only while that event is in the task's applied
    history and its move, as applied, enters (``#review-queue``) or leaves
    (``#review-log``) review. A move that lost a race between clones, or that the
    fold applied to another state than its writer saw, has no visible post.
    """
    by_event = {h[2]: h for h in history}
    by_version = {h[1]: h for h in history}
    shown, hidden = [], []
    for (data,) in conn.execute(POSTS_OF, (task_id,)).fetchall():
        post = json.loads(data)
        if not is_post(post):
            continue
        meta = post["metadata"]
        entry = by_event.get(meta.get("event")) if "event" in meta else by_version.get(
            meta.get("version"))
        applied = entry is not None and ("event" in meta or (
            entry[4] == post["from"] and entry[7] == meta["to_status"]))
        if applied and _crosses(post["to"][0], entry[6], entry[7]):
            shown.append(post)
        else:
            hidden.append(post["id"])
    mail.hide(conn, hidden)
    mail.restore(conn, shown)


# -- queries -------------------------------------------------------------------

class TaskRows(Sequence):
    """Tasks as one JSON array text built by SQLite from the stored per-task JSON:
    parsed only if its items are read, and ``__json__()`` returns the text as it
    is, so a listing of 10,000 tasks is never decoded and encoded again in Python.
    ``list(rows)`` gives the dicts."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._items: list[dict] | None = None

    @property
    def items(self) -> list[dict]:
        if self._items is None:
            self._items = json.loads(self._text)
        return self._items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        return self.items[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and self.items == list(other)

    def __repr__(self) -> str:
        return f"TaskRows({self.items!r})"

    def __json__(self) -> str:
        return self._text


def get(conn: sqlite3.Connection, task_id: str) -> dict | None:
    row = conn.execute("SELECT data FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return json.loads(row[0]) if row else None


def listing(conn: sqlite3.Connection, statuses: list[str] | None = None,
            assigned: str | None = None, group: str | None = None,
            parent: str | None = None, limit: int | None = None) -> TaskRows:
    """Live tasks, ordered by sort order then newest first.

    ``tasks_listing`` covers the query, so 10,000 tasks are one sequential read
    of the index; SQLite joins the rows' JSON in the order the subquery yields.
    """
    sql, args = "SELECT data FROM tasks WHERE deleted = 0", []
    if statuses:
        sql += f" AND status IN ({','.join('?' * len(statuses))})"
        args += statuses
    for column, value in (("assigned_to", assigned), ("grp", group), ("parent", parent)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    sql += " ORDER BY sort_order, clock DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    joined = conn.execute(f"SELECT group_concat(data, ',') FROM ({sql})", args).fetchone()[0]
    return TaskRows(f"[{joined or ''}]")


def in_review(conn: sqlite3.Connection, group: str | None = None) -> int:
    sql, args = "SELECT count(*) FROM tasks WHERE status = 'review' AND deleted = 0", []
    if group is not None:
        sql, args = sql + " AND grp = ?", [group]
    return conn.execute(sql, args).fetchone()[0]


def counts(conn: sqlite3.Connection, group: str | None = None,
           assigned: str | None = None) -> dict[str, int]:
    """Live tasks per status (every status present, zero when empty)."""
    sql, args = "SELECT status, count(*) FROM tasks WHERE deleted = 0", []
    for column, value in (("grp", group), ("assigned_to", assigned)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    found = dict(conn.execute(sql + " GROUP BY status", args).fetchall())
    return {s: found.get(s, 0) for s in STATUSES}


def history(conn: sqlite3.Connection, task_id: str) -> list[dict]:
    rows = conn.execute("SELECT version, event, op, actor, at, from_status, to_status, changes "
                        "FROM task_history WHERE task = ? ORDER BY version", (task_id,))
    keys = ("version", "event", "op", "actor", "at", "from_status", "to_status")
    return [{**dict(zip(keys, r[:7], strict=True)), "changes": json.loads(r[7])} for r in rows]


def conflicts(conn: sqlite3.Connection, task_id: str | None = None) -> list[dict]:
    sql = ("SELECT event, task, op, actor, at, expected_version, actual_version, moved_by, "
           "reason, changes FROM task_conflicts")
    args: tuple = ()
    if task_id is not None:
        sql, args = sql + " WHERE task = ?", (task_id,)
    keys = ("event", "task", "op", "actor", "at", "expected_version", "actual_version",
            "moved_by", "reason")
    return [{**dict(zip(keys, r[:9], strict=True)), "changes": json.loads(r[9])}
            for r in conn.execute(sql + " ORDER BY clock, event", args)]


def comments(conn: sqlite3.Connection, task_id: str) -> list[dict]:
    rows = conn.execute("SELECT id, actor, created_at, content FROM task_comments "
                        "WHERE task = ? ORDER BY clock, id", (task_id,))
    return [dict(zip(("id", "actor", "created_at", "content"), r, strict=True)) for r in rows]


def parent_of(conn: sqlite3.Connection, task_id: str) -> str | None:
    row = conn.execute("SELECT parent FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return row[0] if row else None


def agent_group(conn: sqlite3.Connection, identity: str) -> str | None:
    """The group an identity registered with, if it is registered."""
    row = conn.execute("SELECT grp FROM agents WHERE id = ? AND registered = 1",
                       (identity,)).fetchone()
    return row[0] if row else None


def missing_channels(conn: sqlite3.Connection, names: list[str]) -> list[str]:
    """Those of ``names`` that are not an active channel."""
    active = {r[0] for r in conn.execute(
        f"SELECT name FROM channels WHERE active = 1 AND name IN ({','.join('?' * len(names))})",
        names)}
    return [n for n in names if n not in active]
