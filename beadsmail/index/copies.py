"""Records met more than once: which copy every clone holds, and what is flagged.

A record id names one record, written once by one replica into its own
directory, ``.beads/log/<replica>/``. What arrives through git may not keep to
that: a peer can put a record that names another replica into its own
directory, or publish an existing id with other content. The index holds one
copy of each id in ``records`` (the *held* copy) and chooses it by one rule,
``rank``, so that every clone holding the same copies holds the same one,
whatever order they arrived in:

0. a verified copy (signed: forged lines never reach the index, see
   ``signing.reader``) beats an unverified one;
1. then a copy that sits in the directory of the replica it names beats one that
   does not (a copy with no known directory counts as sitting in its own);
2. then the smaller stored line, compared as text (the rule the merge uses for
   two lines with one id, ``store.merge.union_lines``, so the index and a merged
   tree keep the same one);
3. then the smaller ``(path, line)``: the same line found in several places.

Copies that lose are kept in ``copies`` when they differ in content from the
held copy (``differs``) or sit outside their replica's directory, for
``bd doctor`` and for the flags every record view shows (``flags``):
``replica_mismatch`` (the held copy sits in a directory other than its
replica's) and ``conflicting_copies`` (other copies of the id hold other content).

A copy that beats the held one with the same content only moves where the index
says the record is. A copy with other content at the held copy's own path is
that segment rewritten (by hand, or by a history that rewrites it): the index
keeps what it holds, as it keeps every record a later fold lacks, until it is
rebuilt (``bd doctor`` names the rewrite). Another copy with other content that
beats the held one cannot be folded in place (the domain
tables already hold what the old one said, and later records built on it), so
``contend`` raises ``Reorder`` and the caller builds the index anew; a build
loads every copy and settles each contested id once (``settle``), before the
records that depend on them are folded. The rule lives in ``rank`` alone: a
stronger claim (a verified signature, say) goes first in its tuple.
"""

from __future__ import annotations

import json
import sqlite3

DDL = """
CREATE TABLE IF NOT EXISTS copies (
    id TEXT NOT NULL, path TEXT NOT NULL, data TEXT NOT NULL, line INTEGER NOT NULL,
    differs INTEGER NOT NULL, PRIMARY KEY (id, path, data)) WITHOUT ROWID;
"""
# (one row for the same line repeated in one segment, at its first place met: a line
# repeated 300 times is one copy, and a fold that met a repeat a later merge dropped
# agrees with a fresh one)
_ADD = ("INSERT INTO copies VALUES (?, ?, ?, ?, ?) ON CONFLICT (id, path, data) DO UPDATE "
        "SET line = min(line, excluded.line), differs = excluded.differs")
ADD_CANDIDATE = ("INSERT INTO copies VALUES (?, ?, ?, ?, 0) ON CONFLICT (id, path, data) DO "
                 "UPDATE SET line = min(line, excluded.line)")  # (a build's, settled later)
REPLICA_MISMATCH = "replica_mismatch"
CONFLICTING_COPIES = "conflicting_copies"
Copy = tuple[dict, str, "str | None", "int | None"]  # (record, stored line, path, line)


class Reorder(Exception):
    """A copy arrived that the rule prefers to the held one, with other content: the
    index must be built anew (its folds cannot take the held copy back)."""


def directory(path: str | None) -> str | None:
    return path.split("/", 1)[0] if path else None


def owned(record: dict, path: str | None) -> bool:
    """Whether a copy sits in the directory of the replica it names."""
    return path is None or directory(path) == record["replica"]


def rank(record: dict, text: str, path: str | None, line: int | None) -> tuple:
    """The order of a record's copies: the smallest is held (see the module's rule). A
    signed copy goes first: what reaches the index signed passed verification
    (``signing.reader`` keeps forged lines out), so it beats an unsigned one."""
    return ("seq" not in record, 0 if owned(record, path) else 1, text, path or "", line or 0)


def _keep(conn: sqlite3.Connection, copy: Copy, held: Copy) -> None:
    """Remember a losing copy if it is worth naming: other content, or out of place (the
    held line repeated in its own segment is not another copy)."""
    record, text, path, line = copy
    differs = record != held[0]
    if path is not None and (differs or not owned(record, path)) and (path, text) != (
            held[2], held[1]):
        conn.execute(_ADD, (record["id"], path, text, line or 0, int(differs)))


def _held(conn: sqlite3.Connection, rid: str) -> Copy | None:
    row = conn.execute("SELECT data, path, line FROM records WHERE id=?", (rid,)).fetchone()
    return (json.loads(row[0]), row[0], row[1], row[2]) if row else None


def _hold(conn: sqlite3.Connection, copy: Copy) -> None:
    """Make ``copy`` the held one (its record row takes the copy's every column)."""
    r, text, path, line = copy
    conn.execute("UPDATE records SET kind=?, clock=?, actor=?, created_at=?, replica=?, path=?, "
                 "line=?, data=? WHERE id=?", (r["kind"], r["clock"], r["actor"], r["created_at"],
                                               r["replica"], path, line, text, r["id"]))
    conn.execute("DELETE FROM copies WHERE id=? AND path=? AND data=?", (r["id"], path or "", text))


def contend(conn: sqlite3.Connection, copy: Copy) -> None:
    """Another copy of an id the index holds, met while folding: keep the rule's choice.
    Raises ``Reorder`` when the new copy wins with other content."""
    record, text, path, line = copy
    row = conn.execute("SELECT data, path, line FROM records WHERE id=?",
                       (record["id"],)).fetchone()
    if row is None or (row[0] == text and row[1] == path and row[2] == line):
        return  # (the common case: the same line read again, from another head)
    held = (json.loads(row[0]), *row)
    if rank(*copy) >= rank(*held) or (record != held[0] and path == held[2]):
        _keep(conn, copy, held)  # (the same place rewritten: the copy held is kept)
    elif record != held[0]:
        raise Reorder(record["id"])
    else:
        _hold(conn, copy)
        _keep(conn, held, copy)


def settle(conn: sqlite3.Connection) -> list[tuple[dict, dict]]:
    """After a build loaded every copy (``records`` the first of each id, ``copies`` every
    other): hold each id's preferred copy, keep the losers worth naming. Returns the
    (first, preferred) records whose content differs: their folds must be redone."""
    conn.execute("DELETE FROM copies WHERE EXISTS (SELECT 1 FROM records r WHERE r.id = "
                 "copies.id AND r.path = copies.path AND r.data = copies.data)")
    replaced = []
    for (rid,) in conn.execute("SELECT DISTINCT id FROM copies").fetchall():
        first = _held(conn, rid)
        assert first is not None
        found = [first] + [(json.loads(data), data, path, line) for data, path, line in
                           conn.execute("SELECT data, path, line FROM copies WHERE id=?", (rid,))]
        best = min(found, key=lambda c: rank(*c))
        conn.execute("DELETE FROM copies WHERE id=?", (rid,))
        for copy in found:
            if copy is not best:
                _keep(conn, copy, best)
        if best is not first:
            _hold(conn, best)
            if best[0] != first[0]:
                replaced.append((first[0], best[0]))
    return replaced


def flags(conn: sqlite3.Connection, ids: list[str]) -> dict[str, list[str]]:
    """The flags of each record of ``ids`` that has any (see the module's docstring)."""
    out: dict[str, list[str]] = {}
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        marks = ",".join("?" * len(part))
        for rid, path, replica in conn.execute(
                f"SELECT id, path, replica FROM records WHERE id IN ({marks})", part):
            if path is not None and directory(path) != replica:
                out.setdefault(rid, []).append(REPLICA_MISMATCH)
        for (rid,) in conn.execute(f"SELECT DISTINCT id FROM copies WHERE differs AND id IN "
                                   f"({marks})", part):
            out.setdefault(rid, []).append(CONFLICTING_COPIES)
    return out


def findings(conn: sqlite3.Connection) -> list[dict]:
    """Every record held out of place or met with other copies, for ``bd doctor``: id,
    flags, where the held copy sits and its replica, and each other copy (path, line,
    whether its content differs, the replica it names)."""
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM records WHERE path IS NOT NULL AND substr(path, 1, instr(path, '/') - 1)"
        " != replica UNION SELECT id FROM copies ORDER BY 1")]
    marks = flags(conn, ids)
    out = []
    for rid in ids:
        held = _held(conn, rid)
        assert held is not None
        others = [{"path": path, "line": line, "differs": bool(differs),
                   "replica": json.loads(data).get("replica")} for path, line, data, differs in
                  conn.execute("SELECT path, line, data, differs FROM copies WHERE id=? "
                               "ORDER BY path, line", (rid,))]
        out.append({"id": rid, "flags": marks.get(rid, []), "path": held[2], "line": held[3],
                    "replica": held[0]["replica"], "copies": others})
    return out
