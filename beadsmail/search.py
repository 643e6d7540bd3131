"""Search: ``bd mail search`` and ``bd search`` over the index's full-text table.

A query is words, all of which must match (case and accents ignored); ``"a
phrase"``; ``word*`` for a prefix; ``OR`` between two terms; ``-word`` or ``NOT
word`` to exclude; ``subject:word`` (or ``title:``) and ``body:word`` to look in
one field; parentheses to group. Everything else a user types is taken as text:
the query is rewritten into an FTS5 expression whose every term is quoted, so no
character can reach FTS5 as syntax by accident, and what cannot be rewritten is
one clear error. Hits are ranked by bm25 (a title match weighs double).

What the caller may read decides what is found: mail sent by or reaching them
(directly, through ``@group``, ``*`` or a channel they are in), or everything for
a manager; tasks and comments are readable by everyone.
"""

from __future__ import annotations

import re
import sqlite3

from beadsmail import permissions, timespec
from beadsmail.errors import InvalidInput
from beadsmail.index import mail as mail_index
from beadsmail.index import search as search_index

MAX_QUERY = 500
MAX_TERMS = 32
MAX_LIMIT = 200
KINDS = {"mail": "message", "task": "task", "comment": "comment"}
_FIELDS = {"subject": "title", "title": "title", "body": "body"}
_TOKEN = re.compile(r'\s*(?:(\()|(\))|"([^"]*)("?)|([^\s()"]+))')


def _term(text: str, field: str | None = None) -> str:
    prefix = text.endswith("*") and len(text) > 1
    word = text[:-1] if prefix else text
    quoted = '"' + word.replace('"', '""') + '"' + ("*" if prefix else "")
    return f"{field} : {quoted}" if field else quoted


def to_fts(query: str) -> str:
    """The FTS5 expression for a user's query (see the module docstring)."""
    if not query.strip():
        raise InvalidInput("the search query is empty; give one or more words")
    if len(query) > MAX_QUERY:
        raise InvalidInput(f"the search query is {len(query)} characters long; "
                           f"keep it under {MAX_QUERY}")
    if "\x00" in query:
        raise InvalidInput("the search query contains a NUL character")
    out: list[str] = []
    depth, terms, pending_op = 0, 0, None
    for m in _TOKEN.finditer(query):
        opened, closed, phrase, quote_end, word = m.groups()
        if opened:
            if out and out[-1] not in ("AND", "OR", "NOT", "("):
                out.append("AND")
            depth += 1
            out.append("(")
            continue
        if closed:
            depth -= 1
            if depth < 0 or not out or out[-1] in ("(", "AND", "OR", "NOT"):
                raise InvalidInput("unbalanced or empty parentheses in the search query")
            out.append(")")
            continue
        if phrase is not None and not quote_end:
            raise InvalidInput('a quote in the search query is not closed; close it or drop it')
        if word in ("OR", "AND", "NOT"):
            if not out or out[-1] in ("(", "AND", "OR", "NOT"):
                raise InvalidInput(f"'{word}' in the search query needs a word before it")
            pending_op = word
            out.append(word)
            continue
        negate = False
        if word and word.startswith("-") and len(word) > 1:
            negate, word = True, word[1:]
        field = None
        if word and ":" in word:
            name, _, rest = word.partition(":")
            if name.lower() in _FIELDS and rest:
                field, word = _FIELDS[name.lower()], rest
        term = _term(phrase if phrase is not None else word, field)
        if negate:
            if not out or out[-1] in ("(", "AND", "OR", "NOT"):
                raise InvalidInput("an excluded word (-word) needs a word to match before it")
            out.append("NOT")
        elif out and out[-1] not in ("(", "AND", "OR", "NOT"):
            out.append("AND")
        out.append(term)
        terms += 1
        pending_op = None
    if depth:
        raise InvalidInput("unbalanced parentheses in the search query")
    if pending_op or not terms:
        raise InvalidInput("the search query ends with an operator; add the word it applies to")
    if terms > MAX_TERMS:
        raise InvalidInput(f"the search query has {terms} terms; use at most {MAX_TERMS}")
    return " ".join(out)


def _reader(index, me: str | None, default_role: str) -> tuple[str, list[str]] | None:
    if me is None or permissions.role_of(index, me, default_role) == "manager":
        return None
    return me, mail_index.reach(index.conn, me)


def search(ws, me: str | None, query: str, *, kinds: tuple[str, ...] = tuple(KINDS),
           sender: str | None = None, to: str | None = None, channel: str | None = None,
           thread: str | None = None, since: str | None = None, limit: int = 20) -> list[dict]:
    """Hits for ``query`` that ``me`` may read (None: everything), best first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"--limit must be between 1 and {MAX_LIMIT}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InvalidInput(f"unknown kind {unknown[0]!r}: use {', '.join(KINDS)}")
    match = to_fts(query)
    ws.refresh()
    index = ws.index
    mail_only = any((sender, to, channel, thread))
    record_kinds = tuple(KINDS[k] for k in kinds if not mail_only or k == "mail")
    if "task" in kinds and not mail_only:
        record_kinds += ("task_event",)
    if not record_kinds:
        return []
    reader = _reader(index, me, ws.config["agents"]["default_role"])
    targets = tuple(t for t in (to, "#" + channel.lstrip("#") if channel else None) if t)
    root = index.resolve(thread, ws.prefix, ("message",), "message") if thread else None
    try:
        rows = search_index.search(
            index.conn, match, kinds=record_kinds, reader=reader, sender=sender,
            targets=targets, thread=root, since=timespec.parse_since(since) if since else None,
            limit=limit * 3)
    except sqlite3.OperationalError as exc:
        raise InvalidInput(f"the search query could not be run ({exc}); see 'bd search --help' "
                           "for the query syntax") from None
    return _hits(index, rows, limit)


def _hits(index, rows: list[dict], limit: int) -> list[dict]:
    """One hit per message, task (its creation and edits) or comment, best first."""
    hits, seen = [], set()
    for row in rows:
        hit = _hit(index, row)
        if hit["id"] in seen:
            continue
        seen.add(hit["id"])
        hits.append(hit)
        if len(hits) == limit:
            break
    return hits


def _hit(index, row: dict) -> dict:
    r = row["record"]
    base = {"rank": round(row["rank"], 4) + 0.0, "snippet": row["snippet"],  # (no -0.0)
            "title_snippet": row["title_snippet"], "created_at": r["created_at"]}
    if row["kind"] == "message":
        channel = next((t for t in r["to"] if t.startswith("#")), None)
        return {**base, "kind": "post" if channel else "mail", "id": r["id"], "from": r["from"],
                "to": r["to"], "subject": r["subject"], "thread_id": r["thread_id"]}
    if row["kind"] == "comment":
        return {**base, "kind": "comment", "id": r["id"], "task": r["task"],
                "actor": r["actor"], "content": r["content"]}
    state = row["task"] or {}
    return {**base, "kind": "task", "id": state.get("id", r.get("task", r["id"])),
            "title": state.get("title", ""), "status": state.get("status"),
            "assigned_to": state.get("assigned_to")}
