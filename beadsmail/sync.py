"""Sync between clones over any git remote: fetch, merge, fold, push, retry.

``sync()`` fetches the remote's store branch into
``refs/remotes/<remote>/<branch>`` (after checking it holds a beadsmail store),
merges it into the local store ref under the store lock (a fast-forward when
possible, else a merge commit whose tree is the union of both sides' segment
files, see ``store.merge``), folds the result into the index and pushes. A
push refused because the remote moved meanwhile is retried by fetching and
merging again, a bounded number of times. Every step is idempotent (objects
first, refs moved by compare-and-swap, the index folded in a transaction), so
a sync killed at any point is completed by the next one and loses nothing.

Arrivals (messages for identities working here) fire hooks: see ``arrivals``.

``start_background()`` is the ``sync.auto`` path: a detached process that
coalesces bursts of writes into one sync at a time and logs to
``<common git dir>/beadsmail/sync.log``; a write never waits for it.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path

from beadsmail import arrivals, feedsync, records, reservations
from beadsmail.errors import BeadsError, RemoteError
from beadsmail.store import read_ref
from beadsmail.workspace import Workspace

MAX_ATTEMPTS = 5


def tracking_ref(ws: Workspace, name: str) -> str:
    return feedsync.tracking(name, ws.ref)


def sync(ws: Workspace, remote: str | None = None, pull: bool = True, push: bool = True,
         identities: tuple[str, ...] = (), ssh_command: str | None = None) -> dict:
    """Sync the store with ``remote`` (default ``sync.remote``, else origin); return a report."""
    token = remote or ws.config["sync"].get("remote") or "origin"
    report = _report(token, pull, push)
    ledger = arrivals.open_ledger(ws)
    try:
        if not ledger.started():
            arrivals.baseline(ws, ledger)
        if not _unchanged(ws, token, report):
            _sync(ws, token, pull, push, ssh_command, report)
        if push and not report["pushed"] and not feedsync.tracked(ws, token) and \
                not read_ref(ws.loc.common, feedsync.my_feed(ws) or ws.ref + ".feeds/-"):
            report["warnings"].append(
                "note: nothing published yet: this clone has written no records, and the "
                "store reaches the remote with its first one (until then other clones "
                "cannot adopt it)")
        if pull:
            arrivals.arrive(ws, ledger, set(identities), report)
            report["reservations_lost"] = [
                r["id"] for r in reservations.notify_lost(ws, ws.replica)]
    finally:
        ledger.close()
    return report


def require_store(ws: Workspace, remote: str | None, pull: bool = True,
                  ssh_command: str | None = None) -> None:
    """A clone without a store may adopt its remote's: refuse (``NoStore``, nothing
    created) unless it has a store or the remote has one and this sync pulls."""
    if ws.heads():
        return
    from beadsmail.errors import NoStore
    from beadsmail.store.remote import Transport, resolve

    token = remote or ws.config["sync"].get("remote") or "origin"
    try:
        rem = resolve(ws.loc.common, ws.loc.worktree or ws.loc.main_worktree, token)
    except BeadsError:
        rem = None
    if rem is not None and pull:
        transport = Transport(ws.loc.common, ws.ref, ssh_command)
        try:
            if transport.has_store_ref(rem):
                return
        finally:
            transport.close()
    more = f"; {rem.label} has none either" if rem is not None and pull else ""
    raise NoStore(ws.loc.worktree or ws.loc.gitdir, more)


def _report(token: str, pull: bool, push: bool) -> dict:
    return {"remote": token, "url": None, "ref": None, "pulled": pull, "pushed": False,
            "action": "up to date", "local_head": None, "remote_head": None,
            "received": 0, "sent": 0, "attempts": 0, "new_messages": [],
            "task_conflicts": [], "hooks_deferred": 0, "hooks_held": 0, "warnings": [],
            "feed": None, "feed_head": None, "feeds_moved": 0, "bytes_fetched": 0,
            "legacy_pushed": False, "retired": []}


def _unchanged(ws: Workspace, token: str, report: dict) -> bool:
    """A local remote whose store ref equals ours and our tracking ref: nothing to do.

    Decided from ref files alone (no dulwich, no network), so a no-op sync is cheap.
    """
    url = _git_config_url(ws.loc.common, token)
    if url and not os.path.isabs(url.removeprefix("file://")):
        # relative to the worktree's top, as git and the full path read it
        base = ws.loc.worktree or ws.loc.main_worktree
        url = os.path.normpath(os.path.join(base, url)) if base and "://" not in url else None
    common = _local_common(url) if url else None
    if common is None or not feedsync.unchanged(ws, token, common):
        return False
    report.update(url=url, ref=ws.ref, local_head=read_ref(ws.loc.common, ws.ref),
                  remote_head=read_ref(common, ws.ref), feed=feedsync.my_feed(ws))
    ws.refresh()
    return True


def _sync(ws: Workspace, token: str, pull: bool, push: bool, ssh_command: str | None,
          report: dict) -> None:
    from beadsmail.store.remote import Transport, resolve

    base = ws.loc.worktree or ws.loc.main_worktree
    rem = resolve(ws.loc.common, base, token)
    report.update(remote=rem.name or rem.url, url=rem.url, ref=ws.ref)
    conflicts_before = {c["event"] for c in _task_conflicts(ws)}
    transport = Transport(ws.loc.common, ws.ref, ssh_command)
    try:
        _rounds(ws, transport, rem, pull, push, report)
    finally:
        transport.close()
        ws._writer = None  # its pack list predates the fetch
    ws.refresh()
    report["task_conflicts"] = [c for c in _task_conflicts(ws) if c["event"] not in conflicts_before]


def _rounds(ws: Workspace, transport, rem, pull: bool, push: bool, report: dict) -> None:
    from beadsmail.store.remote import Diverged, Refused

    refused: tuple[dict, str] | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report["attempts"] = attempt
        theirs, held = _fetch(ws, transport, rem, report)
        if refused is not None and refused[0] == theirs:
            raise RemoteError(f"{rem.label} refused the push: {refused[1]}; the local store "
                              "keeps everything, fix the remote's permissions or hooks")
        ours = feedsync.merge(ws, theirs, rem, report, held) if pull else _head(ws)
        report.update(local_head=ours, remote_head=theirs.get(ws.ref))
        if not push or ours is None:
            return
        updates, best_effort = feedsync.updates(ws, theirs, pull, report)
        if not updates:
            if pull:
                feedsync.retire(ws, transport, rem, theirs, report)
            return
        try:
            warnings = transport.push(rem, updates, best_effort)
        except Diverged:
            continue
        except Refused as exc:
            refused = (theirs, str(exc))
            continue
        report["warnings"] += warnings
        done = {ref: change for ref, change in updates.items()
                if not any(ref in w for w in warnings)}
        feedsync.pushed(ws, rem, done, report)
        report["pushed"] = bool(done)
        if pull:
            feedsync.retire(ws, transport, rem, theirs, report)
        if report["action"] == "up to date" and done:
            feed = report.get("feed")
            first = feed in done and done[feed][0] is None
            report["action"] = "created the feed" if first else "pushed"
        return
    raise RemoteError(f"{rem.label} kept moving during {MAX_ATTEMPTS} attempts to push; "
                      "run 'bd sync' again")


def _head(ws: Workspace) -> str | None:
    head = ws.writer.head()
    return head.decode() if head else None


def _fetch(ws: Workspace, transport, rem, report: dict) -> tuple[dict[str, str], dict[str, str]]:
    """The remote's store refs, each checked to be a beadsmail store where it moved, and
    what the tracking refs held of them before."""
    heads = ws.heads()
    known = feedsync.tracked(ws, rem.name, heads)
    before = transport.received
    theirs = transport.fetch(rem, sorted(set(heads.values())), known)
    report["bytes_fetched"] += transport.received - before
    ws._writer = None
    for ref, sha in sorted(theirs.items()):
        if known.get(ref) == sha or ws.writer.is_store(sha.encode()):
            continue
        if ref == ws.ref:
            raise RemoteError(
                f"the branch {ws.ref} of {rem.label} is not a beadsmail store (no "
                ".beads/store.json); nothing was changed: choose another branch with "
                "store.branch in .beads/config.yaml")
        report["warnings"].append(f"warning: {ref} of {rem.label} is not a beadsmail feed; "
                                  "left out")
        del theirs[ref]
    report["feeds_moved"] += sum(1 for ref, sha in theirs.items()
                                 if ref != ws.ref and known.get(ref) != sha)
    return theirs, known


def _task_conflicts(ws: Workspace) -> list:
    """Conflicts recorded by the task fold, when it records them (empty otherwise)."""
    from beadsmail.index import tasks

    query = getattr(tasks, "conflicts", None)
    if query is None:
        return []
    return list(query(ws.index.conn))


# -- the fast path's view of git config (no dulwich) ---------------------------


def _git_config_url(common: Path, name: str) -> str | None:
    """``remote.<name>.url`` for plain configs; None when unsure (the full path decides)."""
    try:
        text = (common / "config").read_text("utf-8")
    except OSError:
        return None
    section, url = None, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == f'[remote "{name}"]' and line.split("=", 1)[0].strip() == "url":
            url = line.split("=", 1)[1].strip()
    if not url or any(c in url for c in "\"\\;#"):
        return None
    return url


def _local_common(url: str) -> Path | None:
    path = Path(url.removeprefix("file://"))
    if (path / ".git").is_dir():
        path = path / ".git"
    if (path / "HEAD").is_file() and (path / "objects").is_dir() and not (path / "commondir").exists():
        return path
    return None


# -- sync.auto ----------------------------------------------------------------


def start_background(ws: Workspace) -> list[str]:
    """Start a detached ``bd sync`` (``sync.auto``); return warnings, never raise."""
    import subprocess

    target = ws.loc.worktree or ws.loc.gitdir
    try:
        subprocess.Popen([sys.executable, "-m", "beadsmail.sync", str(target)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError as exc:
        return [f"warning: could not start the background sync: {exc}"]
    return []


def background(target: str) -> None:
    """One background sync at a time; a request during a run makes it run once more."""
    ws = Workspace.open(target)
    state = ws.loc.state_dir
    state.mkdir(parents=True, exist_ok=True)
    pending = state / "sync.pending"
    pending.touch()
    with open(state / "sync.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # the running sync sees the pending mark and runs again
        while pending.exists():
            pending.unlink(missing_ok=True)
            _log(state, _run_logged(ws))


def _run_logged(ws: Workspace) -> dict:
    try:
        return {"at": records.now_iso(), "ok": True, **sync(ws)}
    except BeadsError as exc:
        return {"at": records.now_iso(), "ok": False, "error": exc.message}
    except Exception as exc:  # noqa: BLE001 - a background run must log, not die silently
        return {"at": records.now_iso(), "ok": False, "error": f"{exc.__class__.__name__}: {exc}"}


def _log(state: Path, entry: dict) -> None:
    path = state / "sync.log"
    try:
        if path.stat().st_size > 1 << 20:
            path.replace(path.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")


if __name__ == "__main__":
    background(sys.argv[1])
