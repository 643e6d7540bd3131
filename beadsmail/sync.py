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

from beadsmail import arrivals, records
from beadsmail.errors import BeadsError, RemoteError
from beadsmail.store import read_ref
from beadsmail.workspace import Workspace

MAX_ATTEMPTS = 5


def tracking_ref(ws: Workspace, name: str) -> str:
    return f"refs/remotes/{name}/{ws.ref.removeprefix('refs/heads/')}"


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
        if pull:
            arrivals.arrive(ws, ledger, set(identities), report)
    finally:
        ledger.close()
    return report


def _report(token: str, pull: bool, push: bool) -> dict:
    return {"remote": token, "url": None, "ref": None, "pulled": pull, "pushed": False,
            "action": "up to date", "local_head": None, "remote_head": None,
            "received": 0, "sent": 0, "attempts": 0, "new_messages": [],
            "task_conflicts": [], "warnings": []}


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
    if common is None:
        return False
    theirs = read_ref(common, ws.ref)
    ours = read_ref(ws.loc.common, ws.ref)
    if theirs is None or theirs != ours or read_ref(ws.loc.common, tracking_ref(ws, token)) != ours:
        return False
    report.update(url=url, ref=ws.ref, local_head=ours, remote_head=theirs)
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

    refused: tuple[str | None, str] | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        report["attempts"] = attempt
        theirs = _fetch(ws, transport, rem, record=pull)
        if refused is not None and refused[0] == theirs:
            raise RemoteError(f"{rem.label} refused the push: {refused[1]}; the local store "
                              "keeps everything, fix the remote's permissions or hooks")
        ours = _merge(ws, theirs, rem, report) if pull else _check_push_only(ws, theirs, rem)
        report.update(local_head=ours, remote_head=theirs)
        if not push or ours is None or ours == theirs:
            return
        try:
            transport.push(rem, ours, theirs)
        except Diverged:
            continue
        except Refused as exc:
            refused = (theirs, str(exc))
            continue
        report["sent"] += _count(ws, theirs, ours)
        report.update(pushed=True, remote_head=ours)
        if report["action"] == "up to date":
            report["action"] = "pushed" if theirs else "created the remote branch"
        if rem.name is not None:
            _track(ws, rem.name, ours)
        return
    raise RemoteError(f"{rem.label} kept moving during {MAX_ATTEMPTS} attempts to push; "
                      "run 'bd sync' again")


def _fetch(ws: Workspace, transport, rem, record: bool) -> str | None:
    heads = [sha for sha in ws.heads().values()]
    theirs = transport.fetch(rem, heads)
    if theirs is None:
        return None
    ws._writer = None
    if not ws.writer.is_store(theirs.encode()):
        raise RemoteError(
            f"the branch {ws.ref} of {rem.label} is not a beadsmail store (no .beads/store.json); "
            "nothing was changed: choose another branch with store.branch in .beads/config.yaml")
    if record and rem.name is not None:
        _track(ws, rem.name, theirs)
    return theirs


def _track(ws: Workspace, name: str, sha: str) -> None:
    from beadsmail.store.remote import set_tracking

    with ws.lock():
        set_tracking(ws.loc.common, tracking_ref(ws, name), sha)


def _merge(ws: Workspace, theirs: str | None, rem, report: dict) -> str | None:
    """Bring ``theirs`` into the local store ref under the lock; return the new local head."""
    from beadsmail.store.merge import merge_commits, relation
    from beadsmail.store.remote import break_stale_lock

    with ws.lock():
        break_stale_lock(ws.loc.common, ws.ref)
        writer = ws.writer
        for _ in range(20):
            old = writer.head()
            kind = relation(writer, old, theirs.encode() if theirs else None)
            if kind in ("none", "same", "ahead"):
                new = old
                break
            if kind == "behind" and _drops(ws, old, theirs, report):
                kind = "diverged"  # never fast-forward to a tree that drops what we hold
            if kind in ("adopt", "behind"):
                new = theirs.encode()  # type: ignore[union-attr]
            else:
                merged = merge_commits(writer, old, theirs.encode(),  # type: ignore[arg-type]
                                       ws.limits, ws.replica)
                report["warnings"] += merged.warnings
                new = writer.add_commit(merged.tree, [old, theirs.encode()],  # type: ignore
                                        f"sync: merge {rem.name or rem.url}", "beadsmail")
            if writer.set_ref(old, new):
                report["action"] = {"adopt": "adopted the remote store", "behind": "fast-forward",
                                    "diverged": "merged"}[kind]
                report["received"] += _count(ws, old.decode() if old else None, new.decode())
                break
        else:
            raise RemoteError("the local store ref kept moving during the merge; run 'bd sync' again")
        ws.refresh()
    return new.decode() if new else None


def _drops(ws: Workspace, old: bytes, theirs: str, report: dict) -> bool:
    """Whether the remote's history drops or rewrites records this clone holds (reported)."""
    from beadsmail.store.merge import drops

    found = drops(ws.writer, old, theirs.encode(), ws.limits, ws.replica)
    report["warnings"] += [f"warning: the remote's history drops records this clone holds or "
                           f"holds what it refuses ({why}); merged instead of fast-forwarding, "
                           "nothing dropped" for why in found]
    return bool(found)


def _check_push_only(ws: Workspace, theirs: str | None, rem) -> str | None:
    from beadsmail.store.merge import relation

    writer = ws.writer
    ours = writer.head()
    kind = relation(writer, ours, theirs.encode() if theirs else None)
    if kind in ("behind", "diverged"):
        raise RemoteError(f"{rem.label} has records this clone lacks, so --push-only cannot "
                          "push; run 'bd sync' without --push-only to merge them first")
    return ours.decode() if ours and kind != "adopt" else theirs


def _count(ws: Workspace, old: str | None, new: str | None) -> int:
    from beadsmail.store.merge import new_records

    return new_records(ws.writer, old.encode() if old else None, new.encode() if new else None,
                       ws.limits)


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
