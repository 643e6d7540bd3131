"""Full-text search over mail, channel posts, tasks and comments (SQLite FTS5).

The text is not stored twice: ``search`` is an FTS5 table with external content,
whose content is the view ``search_text`` over ``records`` (a message's subject
and body, a task's title and description, a task edit's new title and
description, a comment's content), keyed by the record's rowid. Triggers on
``records`` keep it current as records are folded or dropped (a purge, a
compaction); a build fills it once at the end with FTS5's ``rebuild`` and only
then adds the triggers, so a rebuild never pays for row-by-row updates.

What a hit stands for is decided at query time: a message hit counts only while
the message is live (in ``messages``) and readable by the caller, a task or edit
hit names its task while the task is not deleted, a comment hit its task.
"""

from __future__ import annotations

import json
import sqlite3

KINDS = ("message", "task", "task_event", "comment")
_TITLE = ("CASE {r}.kind WHEN 'message' THEN json_extract({r}.data, '$.subject') "
          "WHEN 'comment' THEN '' ELSE coalesce(json_extract({r}.data, '$.title'), '') END")
_BODY = ("CASE {r}.kind WHEN 'message' THEN json_extract({r}.data, '$.body') "
         "WHEN 'comment' THEN json_extract({r}.data, '$.content') "
         "ELSE coalesce(json_extract({r}.data, '$.description'), '') END")
_WHEN = "{r}.kind IN ('message', 'task', 'task_event', 'comment')"

DDL = f"""
CREATE VIEW IF NOT EXISTS search_text AS SELECT rowid AS rid, {_TITLE.format(r='records')}
    AS title, {_BODY.format(r='records')} AS body FROM records
    WHERE {_WHEN.format(r='records')};
CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5(
    title, body, content='search_text', content_rowid='rid', tokenize='unicode61 remove_diacritics 2');
"""
KEYS = ""
# After a build has loaded and folded every record: index them at once, then keep up.
QUERY_INDEXES = f"""
INSERT INTO search(search) VALUES ('rebuild');
CREATE TRIGGER IF NOT EXISTS search_added AFTER INSERT ON records
WHEN {_WHEN.format(r='new')} BEGIN
    INSERT INTO search(rowid, title, body)
    VALUES (new.rowid, {_TITLE.format(r='new')}, {_BODY.format(r='new')});
END;
CREATE TRIGGER IF NOT EXISTS search_dropped AFTER DELETE ON records
WHEN {_WHEN.format(r='old')} BEGIN
    INSERT INTO search(search, rowid, title, body)
    VALUES ('delete', old.rowid, {_TITLE.format(r='old')}, {_BODY.format(r='old')});
END;
CREATE TRIGGER IF NOT EXISTS search_changed AFTER UPDATE OF data ON records
WHEN {_WHEN.format(r='old')} BEGIN
    INSERT INTO search(search, rowid, title, body)
    VALUES ('delete', old.rowid, {_TITLE.format(r='old')}, {_BODY.format(r='old')});
    INSERT INTO search(rowid, title, body)
    SELECT new.rowid, {_TITLE.format(r='new')}, {_BODY.format(r='new')}
    WHERE {_WHEN.format(r='new')};
END;
"""
TABLES: tuple[str, ...] = ()
LOADED: dict = {}
LOADED_INTO: dict = {}
MARK = ("**", "**")  # around matched words in snippets (Markdown bold)


def fold(conn: sqlite3.Connection, by_kind: dict[str, list[dict]]) -> None:
    """Nothing to fold: the triggers on ``records`` keep the text index current."""


def search(conn: sqlite3.Connection, match: str, *, kinds: tuple[str, ...],
           reader: tuple[str, list[str]] | None, sender: str | None = None,
           targets: tuple[str, ...] = (), thread: str | None = None,
           since: str | None = None, limit: int = 20) -> list[dict]:
    """Hits for the FTS5 expression ``match``, best first (bm25, titles weigh double).

    ``reader``: (identity, the targets that reach it: see ``mail.reach``) to keep
    only the mail it may read, or None for everything. ``sender``, ``targets``
    (each one must be among a message's recipients), ``thread`` (a message id:
    its conversation) and ``since`` (an ISO time) narrow mail down.
    Raises ``sqlite3.OperationalError`` for an expression FTS5 refuses.
    """
    where, args = [f"r.kind IN ({','.join('?' * len(kinds))})"], list(kinds)
    if reader is not None:
        me, reach = reader
        where.append("(r.kind <> 'message' OR m.sender = ? OR EXISTS (SELECT 1 FROM message_to x "
                     "WHERE x.message_id = r.id AND (x.target = ? OR x.target IN "
                     f"({','.join('?' * len(reach))}))))")
        args += [me, me, *reach]
    if sender is not None:
        where.append("m.sender = ?")
        args.append(sender)
    for target in targets:
        where.append("EXISTS (SELECT 1 FROM message_to y WHERE y.message_id = r.id "
                     "AND y.target = ?)")
        args.append(target)
    if thread is not None:
        where.append("m.thread_id = (SELECT thread_id FROM messages WHERE id = ?)")
        args.append(thread)
    if since is not None:
        where.append("r.created_at >= ?")
        args.append(since)
    # Rank the hits in FTS5 alone, then join and filter only the best ``window`` of them
    # (or of all of them, when too few of those pass the filters): the joins, the
    # text, the snippets and a task's state cost per row, the ranking does not.
    window = max(4 * limit, 100)
    while True:
        sql = (
            "WITH hits(rid, rank) AS MATERIALIZED (SELECT rowid, rank FROM search "
            "WHERE search MATCH ? AND rank MATCH 'bm25(2.0, 1.0)' ORDER BY rank LIMIT ?) "
            "SELECT r.rowid, hits.rank, t.id, (SELECT count(*) FROM hits) "
            "FROM hits JOIN records r ON r.rowid = hits.rid "
            "LEFT JOIN messages m ON m.id = r.id "
            "LEFT JOIN tasks t ON t.id = CASE r.kind WHEN 'task' THEN r.id "
            "    WHEN 'message' THEN NULL ELSE json_extract(r.data, '$.task') END "
            "WHERE (r.kind <> 'message' OR m.id IS NOT NULL) "
            "AND (r.kind = 'message' OR (t.id IS NOT NULL AND t.deleted = 0)) "
            f"AND {' AND '.join(where)} ORDER BY hits.rank, r.clock DESC, r.id LIMIT ?")
        rows = conn.execute(sql, [match, window, *args, limit]).fetchall()
        if len(rows) >= limit or not rows and not conn.execute(
                "SELECT 1 FROM search WHERE search MATCH ? LIMIT 1 OFFSET ?",
                (match, window - 1)).fetchone() or rows and rows[0][3] < window:
            break
        window = -1  # (every hit: SQLite reads LIMIT -1 as no limit)
    return [_found(conn, match, rowid, rank, task) for rowid, rank, task, _ in rows]


def _found(conn: sqlite3.Connection, match: str, rowid: int, rank: float,
           task_id: str | None) -> dict:
    open_, close = MARK
    rid, kind, data = conn.execute("SELECT id, kind, data FROM records WHERE rowid = ?",
                                   (rowid,)).fetchone()
    title, body = conn.execute(
        f"SELECT snippet(search, 0, '{open_}', '{close}', '…', 12), "
        f"snippet(search, 1, '{open_}', '{close}', '…', 16) FROM search "
        "WHERE search MATCH ? AND rowid = ?", (match, rowid)).fetchone()
    task = None
    if task_id is not None:
        task = json.loads(conn.execute("SELECT data FROM tasks WHERE id = ?",
                                       (task_id,)).fetchone()[0])
    return {"id": rid, "kind": kind, "record": json.loads(data), "rank": rank,
            "title_snippet": title, "snippet": body, "task": task}
