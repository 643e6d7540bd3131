"""Ephemeral cleanup: purge closed ephemeral messages, then compact this replica's segments.

A message is closed when every recipient has acked it (see
``index.mail.closed_ephemeral``). A closed message that a message staying stored
still points at (its thread root, or the message a reply answers) is kept until
that one goes too, so ``bd show --thread`` never loses a thread's root while a
reply is still open. Removal is two steps. First one commit of
``purge`` records naming the messages: every replica that folds them drops the
messages (and ignores their receipts), whatever order records arrive in, so
other clones forget them on their next sync. Then, under the store lock, this
replica rewrites the segments it owns without the purged messages' lines and
their receipts' lines (only the owning replica ever rewrites a segment), and the
index drops those records, renumbers the kept lines and re-reads the rewritten
segments. Lines written by other replicas stay in their segments, ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from beadsmail.errors import InvalidInput
from beadsmail.index import mail as mail_index
from beadsmail.signing import feed
from beadsmail.workspace import Workspace

PURGE_CHUNK = 1000


def cleanup(ws: Workspace, actor: str, *, force: bool = False, dry_run: bool = False,
            older_than: str | None = None) -> dict:
    """List (dry run, or neither flag) or remove (``force``) closed ephemeral messages."""
    from beadsmail import timespec

    if force and dry_run:
        raise InvalidInput("give --dry-run or --force, not both")
    age = timespec.parse_duration(older_than, "--older-than") if older_than else 0.0
    cutoff = timespec.iso(datetime.now(UTC) - timedelta(seconds=age))
    ws.refresh()
    closed, kept = keep_referenced(ws.index.conn,
                                   mail_index.closed_ephemeral(ws.index.conn, cutoff))
    result = {"mode": "force" if force else "dry-run" if dry_run else "preview",
              "count": len(closed), "messages": closed, "kept": kept, "purge_records": [],
              "compacted_segments": [], "lines_removed": 0, "warnings": []}
    if not force or not closed:
        return result
    ids = [m["id"] for m in closed]
    chunks = [ids[i:i + PURGE_CHUNK] for i in range(0, len(ids), PURGE_CHUNK)]
    written = ws.write(actor, [("purge", {"targets": c, "reason": "bd cleanup --ephemeral"})
                               for c in chunks],
                       f"cleanup: purge {len(ids)} closed ephemeral message"
                       + ("s" if len(ids) != 1 else ""))
    result["purge_records"] = [r["id"] for r in written.records]
    result["warnings"] = written.warnings
    segments, removed = compact(ws, actor, set(ids))
    result["compacted_segments"], result["lines_removed"] = segments, removed
    return result


def keep_referenced(conn, closed: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split closed messages into those to purge and those that a message staying stored
    still points at (as its thread root or the message it replies to), transitively: a
    thread never loses its root or a reply's parent while the reply is kept."""
    going = {m["id"] for m in closed}
    pointers: dict[str, set[str]] = {}
    for mid, thread, parent in mail_index.thread_links(conn, sorted(going)):
        for target in {thread, parent} - {None, mid}:
            pointers.setdefault(target, set()).add(mid)
    changed = True
    while changed:
        stays = {mid for mid in going if pointers.get(mid, set()) - going}
        going -= stays
        changed = bool(stays)
    kept = [{**m, "kept_for": sorted(pointers[m["id"]] - going)}
            for m in closed if m["id"] not in going]
    return [m for m in closed if m["id"] in going], kept


def compact(ws: Workspace, actor: str, purged: set[str]) -> tuple[list[str], int]:
    """Rewrite this replica's segments without the purged messages and their receipts."""
    with ws.lock():
        ws.refresh()
        from beadsmail import boundary

        replica = ws.replica
        writer = ws.writer
        mine = {path: blob for path, blob in boundary.segments(writer, writer.head(),
                                                                ws.limits).items()
                if path.startswith(replica + "/")}
        plans = {}
        for path, blob in sorted(mine.items()):
            content = boundary.read_blob(writer, path, blob, ws.limits)
            plan = _plan(content, purged, ws.limits) if isinstance(content, bytes) else None
            if plan is not None:
                plans[path] = plan
        if not plans:
            return [], 0
        index = ws.index
        clock = index.max_clock() + 1
        contents = {path: _marked(ws, actor, clock, path, plan) for path, plan in plans.items()}
        with index.transaction() as conn:
            for path, (_, _, dropped, kept, _) in plans.items():
                mail_index.compacted(conn, path, dropped, kept)
            writer.replace_segments(
                replica, {path.split("/", 1)[1]: data for path, data in contents.items()},
                f"cleanup: compact {len(plans)} segment{'s' if len(plans) != 1 else ''}", actor)
        ws.refresh()
    return sorted(plans), sum(len(plan[2]) for plan in plans.values())


def _marked(ws: Workspace, actor: str, clock: int, path: str, plan) -> bytes:
    """A compacted segment's new bytes: the kept lines, then a ``compaction`` record naming
    what went (ids and the sha256 of each removed line), signed by this replica's feed
    key, which makes the rewrite recognisable to every clone as the owner's (see
    ``boundary.compaction_of``, ``signing.feed``), then a torn last line if there was one."""
    from beadsmail import records

    kept_bytes, rest, dropped, _, hashes = plan
    order = sorted(range(len(dropped)), key=dropped.__getitem__)
    marker = records.make("compaction", actor, clock, ws.replica, ws.prefix,
                          segment=path.split("/", 1)[1], removed=[dropped[n] for n in order],
                          hashes=[hashes[n] for n in order])
    return kept_bytes + records.dumps(feed.seal_marker(marker, ws.signer.key)) + b"\n" + rest


def _plan(content: bytes, purged: set[str], limits
          ) -> tuple[bytes, bytes, list[str], list[tuple[str, int]], list[str]] | None:
    """(kept lines, a torn last line, dropped record ids, [(kept id, new line)], the
    dropped lines' sha256) or None when nothing goes."""
    from beadsmail import boundary
    from beadsmail.records import parse_line

    lines = content.split(b"\n")
    rest = lines.pop()  # what follows the last newline: normally nothing
    kept_lines: list[bytes] = []
    dropped: list[str] = []
    kept: list[tuple[str, int]] = []
    hashes: list[str] = []
    for raw in lines:
        record = boundary.parse(raw, limits, parse_line) if raw.strip() else None
        if isinstance(record, dict) and record["kind"] != "dropped" and (
                record["id"] in purged or (
                record["kind"] == "receipt" and record.get("message") in purged)):
            dropped.append(record["id"])
            hashes.append(feed.line_hash(raw))
            kept_stub = feed.stub(raw)  # (a signed feed keeps its chain: see signing.feed)
            if kept_stub is not None:
                kept_lines.append(kept_stub)
            continue
        kept_lines.append(raw)
        if isinstance(record, dict):  # (a refused line stays as it is: 'bd doctor' reports it)
            kept.append((record["id"], len(kept_lines)))
    if not dropped:
        return None
    return b"".join(line + b"\n" for line in kept_lines), rest, dropped, kept, hashes
