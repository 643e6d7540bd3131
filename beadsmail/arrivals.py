"""Arrivals: messages that sync brought for identities working here fire ``on_message``.

After a sync's merge, the index is asked for ``message`` records of other
replicas folded since the last sync (``index.arrivals``), addressed to an
identity that works in this repository: one configured (``identity``) in any
worktree's ``.beads/config.yaml`` or ``config.json``, one passed by the caller
(the CLI passes the identity ``bd`` acts as), or one that wrote records from
this replica (agents registered from here included). Each such message fires
``on_message <id> arrive`` once per clone, in the worktree configured for the
recipient (else the worktree syncing).

Only records the fold accepted can fire, with the fields the fold kept: a line
the index rejects fires nothing, a line repeated fires once. Exactly once per
message id and clone: the ledger (beside the index, kept across ``bd index
rebuild``) remembers every id it has accounted for, so neither a rebuild nor the
other side's cleanup and compaction make a message new again. Mail that a plain
``git fetch`` brought is readable at once, but its hooks fire at the next ``bd
sync`` (reads never run hooks). A clone's first sync treats the mail it already
had as history, not as arrivals.

The hooks of one sync share its time for hooks (``hooks.budget``): hooks it
could not run stay queued in the ledger and run at the next sync, never twice
(each is taken off the queue before it runs). So do the arrivals of a hook that
waits for approval (``approvals``): once approved, it runs for them.
"""

from __future__ import annotations

from pathlib import Path

from beadsmail import config as config_mod
from beadsmail import records
from beadsmail.errors import BeadsError
from beadsmail.index import arrivals as ledger_mod
from beadsmail.workspace import Workspace


def open_ledger(ws: Workspace) -> ledger_mod.Ledger:
    return ledger_mod.Ledger(ws.loc.state_dir / "arrivals.sqlite3")


def baseline(ws: Workspace, ledger) -> None:
    """First sync of this clone: whatever it already has is history, not arrivals."""
    ws.refresh()
    ledger.baseline(ws.index, ws.replica, records.now_iso())


def arrive(ws: Workspace, ledger, identities: set[str], report: dict) -> None:
    """Queue the arrival hooks of what the index folded since the last sync; run the queue."""
    ws.refresh()
    candidates = ledger.new_messages(ws.index, ws.replica)
    due: list[tuple[dict, set[str]]] = []
    if candidates:
        conn = ws.index.conn
        places = _identity_worktrees(ws)
        reach = ledger_mod.reach_map(conn, identities | set(places) |
                                     ledger.local_actors(conn, ws.replica))
        for message in sorted(candidates, key=lambda m: (m["clock"], m["id"])):
            whom = ledger_mod.reached(message, reach)
            if whom and not ledger_mod.is_deleted(conn, message["id"]):
                due.append((message, whom))
        default = ws.loc.worktree or ws.loc.main_worktree
        runs = [(m["id"], str(p)) for m, whom in due
                for p in sorted({p for w in whom for p in places.get(w, [default]) if p}, key=str)]
    else:
        runs = []
    fresh = set(ledger.take([m["id"] for m in candidates], runs, records.now_iso()))
    for message, whom in due:
        if message["id"] in fresh:
            report["new_messages"].append({"id": message["id"], "from": message.get("from"),
                                           "to": sorted(whom), "subject": message.get("subject")})
    run_pending(ws, ledger, report)


def run_pending(ws: Workspace, ledger, report: dict) -> None:
    """Run queued arrival hooks, oldest first, while this command has time for hooks. A
    hook waiting for approval keeps its queue: approved, it runs what arrived meanwhile."""
    queue = ledger.pending()
    if not queue:
        return
    runner = ws.hook_runner()
    states: dict[str, str] = {}
    deferred = held = 0
    for message_id, worktree in queue:
        if worktree not in states:
            states[worktree], notes = runner.check(Path(worktree), "on_message")
            report["warnings"] += notes
        if states[worktree] == "held":
            held += 1
            continue
        if runner.spent():
            deferred += 1
            continue
        if not ledger.claim(message_id, worktree) or states[worktree] == "absent":
            continue  # another sync took it; or there is no hook to run
        message = ws.index.record(message_id)
        if message is None or ledger_mod.is_deleted(ws.index.conn, message_id):
            continue  # purged meanwhile: nothing to announce
        report["warnings"] += runner.run(Path(worktree), "on_message", message, "arrive")
    report["hooks_deferred"], report["hooks_held"] = deferred, held
    if deferred:
        report["warnings"].append(
            f"warning: {deferred} arrival hook{'s' if deferred != 1 else ''} not run yet: "
            "this command's time for hooks (hooks.budget) is spent; the next 'bd sync' "
            f"runs {'them' if deferred != 1 else 'it'}")


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
