"""Arrivals: messages that sync brought for identities working here fire ``on_message``.

After a sync's merge, the bytes other replicas appended since the last
sync are read for ``message`` records addressed to an identity that works in
this repository: one configured (``identity``) in any worktree's
``.beads/config.yaml`` or ``config.json``, one passed by the caller (the CLI
passes the identity ``bd`` acts as), or one that wrote records from this
replica (agents registered from here included). Each such message fires
``on_message <id> arrive`` once per clone, in the worktree configured for the
recipient (else the worktree syncing). The ledger of fired ids lives beside the
index and survives ``bd index rebuild`` (``index.arrivals``); ids are marked
before the hook runs, so a hook never fires twice. Mail that a plain
``git fetch`` brought is readable at once, but its hooks fire at the next
``bd sync`` (reads never run hooks). A clone's first sync treats the mail it
already had as history, not as arrivals.

Detection reads git, not the index: the ledger remembers, per segment of another
replica, the blob last examined; a sync reads only the bytes appended since
(a segment rewritten by compaction is read whole, and the ledger's ids keep
that from firing twice). So the cost follows what arrived, not what is stored.
"""

from __future__ import annotations

from pathlib import Path

from beadsmail import config as config_mod
from beadsmail import records
from beadsmail.errors import BeadsError
from beadsmail.index import arrivals as ledger_mod
from beadsmail.store import read_ref
from beadsmail.workspace import Workspace


def open_ledger(ws: Workspace) -> ledger_mod.Ledger:
    return ledger_mod.Ledger(ws.loc.state_dir / "arrivals.sqlite3")


def baseline(ws: Workspace, ledger) -> None:
    """First sync of this clone: whatever it already has is history, not arrivals."""
    from beadsmail import boundary

    writer, limits = ws.writer, ws.limits
    segments: dict[str, str] = {}
    for _, sha in sorted(ws.heads().items()):
        for path, blob in boundary.segments(writer, sha.encode(), limits).items():
            known = segments.get(path)
            if known is None or (known != blob.decode() and boundary.blob_size(writer, blob)
                                 > boundary.blob_size(writer, known.encode())):
                segments[path] = blob.decode()
    ledger.record(read_ref(ws.loc.common, ws.ref), segments, (), records.now_iso())


def arrive(ws: Workspace, ledger, identities: set[str], report: dict) -> None:
    head = read_ref(ws.loc.common, ws.ref)
    if head is None or ledger.meta("head") == head:
        return
    ws.refresh()
    conn = ws.index.conn
    places = _identity_worktrees(ws)
    reach = ledger_mod.reach_map(conn, identities | set(places) |
                                 ledger.local_actors(conn, ws.replica))
    seen, candidates = _new_messages(ws, ledger.examined(), head)
    due = []
    for message in candidates:
        whom = ledger_mod.reached(message, reach)
        if whom and not ledger_mod.is_deleted(conn, message["id"]):
            due.append((message, whom))
    fresh = set(ledger.record(head, seen, [m["id"] for m, _ in due], records.now_iso()))
    default = ws.loc.worktree or ws.loc.main_worktree
    timeout = float(ws.config["hooks"]["timeout"])
    hooked: dict[Path, bool] = {}
    for message, whom in due:
        if message["id"] not in fresh:
            continue
        report["new_messages"].append({"id": message["id"], "from": message.get("from"),
                                       "to": sorted(whom), "subject": message.get("subject")})
        for worktree in sorted({p for w in whom for p in places.get(w, [default]) if p}, key=str):
            if hooked.setdefault(worktree, (worktree / ".beads" / "hooks" / "on_message").exists()):
                from beadsmail import hooks  # subprocess: imported only when a hook runs

                report["warnings"] += hooks.run(worktree, "on_message", message, "arrive", timeout)


def _new_messages(ws: Workspace, examined: dict[str, str], head: str):
    """Messages in other replicas' segments appended since they were last examined."""
    from beadsmail import boundary

    writer, limits = ws.writer, ws.limits
    mine = ws.replica + "/"
    seen: dict[str, str] = {}
    found: list[dict] = []
    for path, blob in boundary.segments(writer, head.encode(), limits).items():
        sha = blob.decode()
        if path.startswith(mine) or examined.get(path) == sha:
            continue
        content, start = boundary.read_blob(writer, path, blob, limits), 0
        if not isinstance(content, bytes):
            continue  # refused by the boundary (the fold reports it)
        if path in examined:
            previous = boundary.read_blob(writer, path, examined[path].encode(), limits)
            if isinstance(previous, bytes) and content.startswith(previous):
                start = len(previous)
        for raw in content[start:].split(b"\n"):
            if b'"kind":"message"' in raw:
                record = boundary.parse(raw, limits, records.parse_line)
                if isinstance(record, dict):  # (a refused line: the fold reports it)
                    found.append(record)
        seen[path] = sha
    found = [m for m in found if isinstance(m, dict) and m.get("kind") == "message"
             and isinstance(m.get("id"), str) and isinstance(m.get("to"), list)
             and isinstance(m.get("clock"), int)]
    found.sort(key=lambda m: (m["clock"], m["id"]))
    return seen, found


def _worktrees(ws: Workspace) -> list[Path]:
    """Every checkout of this repository: the main worktree and the linked ones."""
    found = [ws.loc.main_worktree] if ws.loc.main_worktree else []
    linked = ws.loc.common / "worktrees"
    if linked.is_dir():
        for entry in sorted(linked.iterdir()):
            try:
                gitdir = Path((entry / "gitdir").read_text("utf-8").strip())
            except OSError:
                continue
            if gitdir.parent.is_dir():
                found.append(gitdir.parent)
    return found


def _identity_worktrees(ws: Workspace) -> dict[str, list[Path]]:
    places: dict[str, list[Path]] = {}
    for worktree in _worktrees(ws):
        try:
            name = config_mod.load(worktree, ws.loc.state_dir).get("identity")
        except BeadsError:
            continue
        if name:
            places.setdefault(str(name), []).append(worktree)
    return places
