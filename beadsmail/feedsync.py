"""The feed steps of a sync: merge what the remote's store refs hold, build and push our feed.

A remote holds one feed ref per replica (``refs/heads/<branch>.feeds/<replica>``,
see ``store.feeds``) and, during the transition from the one-branch layout, the
old store branch itself. A sync

1. merges, under the store lock, the old branch (fast-forward or merge commit,
   as before) and every feed that moved since it was merged last into the local
   store ref, the merged view, in one commit;
2. records what the remote holds in ``refs/remotes/<remote>/`` (as ``git fetch``
   would; refs gone from the remote lose their tracking copy once merged);
3. brings this replica's feed ref up to the view and pushes it (a fast-forward
   by its only writer, so never contended), and, best effort, the view to the
   old branch (``sync.legacy_branch``: ``auto`` pushes it when the remote has it,
   ``always`` creates it too, ``never``), whose refusal never fails the sync.

Which feed commit was merged last is kept in ``<common git dir>/beadsmail/feeds.json``
(with the view commit our own feed was built from), so a feed brought by a plain
``git fetch`` is still merged by the next sync, and a no-op sync is decided from
ref files and that file alone.
"""

from __future__ import annotations

import json
import os
import time

from beadsmail.errors import InvalidInput, RemoteError
from beadsmail.store import feed_prefix, feed_ref, read_ref, replica_id, store_heads
from beadsmail.workspace import Workspace

LEGACY_MODES = ("auto", "always", "never")
STATE = "feeds.json"


# -- what was merged ----------------------------------------------------------------


def load_state(ws: Workspace) -> dict:
    """``{"merged": {feed ref: commit}, "since": {feed ref: when that commit was first
    merged here}, "built_from": view commit}`` (empty when unknown)."""
    try:
        data = json.loads((ws.loc.state_dir / STATE).read_text("utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        data = {}
    merged, since = data.get("merged"), data.get("since")
    return {"merged": {k: v for k, v in merged.items() if isinstance(v, str)}
            if isinstance(merged, dict) else {},
            "since": {k: v for k, v in since.items() if isinstance(v, int)}
            if isinstance(since, dict) else {},
            "built_from": data.get("built_from")}


def save_state(ws: Workspace, state: dict) -> None:
    if state == load_state(ws):
        return
    path = ws.loc.state_dir / STATE
    tmp = path.with_name(f"{STATE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, sort_keys=True), "utf-8")
    os.replace(tmp, path)


def legacy_mode(ws: Workspace) -> str:
    mode = ws.config["sync"].get("legacy_branch", "auto")
    if mode not in LEGACY_MODES:
        raise InvalidInput(f"sync.legacy_branch {mode!r} must be one of "
                           f"{', '.join(LEGACY_MODES)}; fix .beads/config.yaml")
    return mode


def my_feed(ws: Workspace) -> str | None:
    rid = replica_id(ws.loc, create=False)
    return feed_ref(ws.ref, rid) if rid else None


def tracking(name: str, ref: str) -> str:
    """``refs/heads/<x>`` on remote ``name`` -> ``refs/remotes/<name>/<x>``."""
    return f"refs/remotes/{name}/{ref.removeprefix('refs/heads/')}"


def tracked(ws: Workspace, name: str | None, heads: dict[str, str] | None = None
            ) -> dict[str, str]:
    """What we recorded of remote ``name``'s store refs, by their name on the remote."""
    if name is None:
        return {}
    prefix = f"refs/remotes/{name}/"
    return {"refs/heads/" + ref[len(prefix):]: sha for ref, sha in
            (ws.heads() if heads is None else heads).items() if ref.startswith(prefix)}


# -- merging --------------------------------------------------------------------------


def merge(ws: Workspace, theirs: dict[str, str], rem, report: dict,
          held: dict[str, str]) -> str | None:
    """Merge the remote's store refs ``theirs`` into the view; return the new view head.
    ``held``: what the tracking refs held before the fetch."""
    from beadsmail.store.remote import break_stale_lock

    with ws.lock():
        break_stale_lock(ws.loc.common, ws.ref)
        state = load_state(ws)
        for _ in range(20):
            old = ws.writer.head()
            new, kind, feeds = _merged(ws, old, theirs, state, rem, report)
            if new == old or ws.writer.set_ref(old, new):
                break
        else:
            raise RemoteError("the local store ref kept moving during the merge; run 'bd sync' again")
        if new != old:
            report["action"] = kind
            report["received"] += _count(ws, old, new)
        now = int(time.time())
        state["merged"].update({ref: sha.decode() for ref, _, sha in feeds})
        state["since"].update({ref: now for ref, _, _ in feeds})
        for ref in theirs:  # (seen unchanged since this clone first saw it)
            state["since"].setdefault(ref, now)
        if theirs.get(ws.ref):
            state["merged"][ws.ref] = theirs[ws.ref]
        save_state(ws, state)
        _track_all(ws, rem, theirs, state, held)
        ws.refresh()
    return new.decode() if new else None


def _merged(ws: Workspace, old: bytes | None, theirs: dict[str, str], state: dict, rem,
            report: dict) -> tuple[bytes | None, str, list]:
    """The new view commit (or ``old``), how it came about, and the feeds it merged."""
    from beadsmail.store import feeds as feeds_mod
    from beadsmail.store.merge import merge_commits, relation

    writer, warnings = ws.writer, report["warnings"]
    legacy = theirs.get(ws.ref)
    kind = relation(writer, old, legacy.encode() if legacy else None)
    if kind == "behind" and _drops(ws, old, legacy, report):  # type: ignore[arg-type]
        kind = "diverged"  # never fast-forward to a tree that drops what this clone holds
    head, how = old, "up to date"
    if kind in ("adopt", "behind"):
        head, how = legacy.encode(), {"adopt": "adopted the remote store", "behind": "fast-forward"}[kind]
    elif kind == "diverged":
        merged = merge_commits(writer, old, legacy.encode(), ws.limits, ws.replica,
                               sealed_by_owner(ws))
        warnings += merged.warnings
        head = writer.add_commit(merged.tree, [old, legacy.encode()],
                                 f"sync: merge {rem.name or rem.url}", "beadsmail")
        how = "merged"
    feeds = _feeds_to_merge(ws, theirs, state)
    if not feeds:
        return head, how, feeds
    tree = feeds_mod.merge_into(writer, head, feeds, warnings, ws.limits, ws.replica,
                                sealed_by_owner(ws))
    if head is not None and tree == writer.commit(head).tree:
        return head, how, feeds
    names = ", ".join(ref.rsplit("/", 1)[1] for ref, _, _ in feeds[:8])
    more = f" and {len(feeds) - 8} more" if len(feeds) > 8 else ""
    head = writer.add_commit(tree, [head] if head else [], f"sync: merge feeds {names}{more}",
                             "beadsmail")
    return head, "merged" if old is not None else "adopted the remote store", feeds


def _drops(ws: Workspace, old: bytes, theirs: str, report: dict) -> bool:
    """Whether the remote's history drops or rewrites records this clone holds, or holds
    what the boundary refuses (reported): then it is merged, not fast-forwarded to."""
    from beadsmail.store.merge import drops

    found = drops(ws.writer, old, theirs.encode(), ws.limits, ws.replica, sealed_by_owner(ws))
    report["warnings"] += [f"warning: the remote's history drops records this clone holds or "
                           f"holds what it refuses ({why}); merged instead of fast-forwarding, "
                           "nothing dropped" for why in found]
    return bool(found)


def sealed_by_owner(ws: Workspace):
    """For the merge: whether a ``compaction`` marker is signed by the key this clone
    verified for its replica's feed (None: no key known; see ``boundary.compaction_of``)."""
    from beadsmail.index import feeds as feeds_index
    from beadsmail.signing import feed

    def sealed(marker: dict) -> bool | None:
        row = feeds_index.load(ws.index.conn, marker["replica"])
        return None if row is None or row[0] is None else feed.sealed(marker, row[0])
    return sealed


def _feeds_to_merge(ws: Workspace, theirs: dict[str, str], state: dict) -> list:
    """(ref, merged last, now) for each feed whose commit we have not merged yet."""
    from beadsmail.store.feeds import descends

    prefix = feed_prefix(ws.ref)
    out = []
    for ref, sha in sorted(theirs.items()):
        last = state["merged"].get(ref)
        if not ref.startswith(prefix) or last == sha:
            continue
        if last is not None and descends(ws.writer, last.encode(), sha.encode()):
            continue  # an older tip than the one merged (another remote lags): nothing new
        out.append((ref, last.encode() if last else None, sha.encode()))
    return out


def _count(ws: Workspace, old: bytes | None, new: bytes | None) -> int:
    from beadsmail.store.merge import new_records

    return new_records(ws.writer, old, new, ws.limits)


def _track_all(ws: Workspace, rem, theirs: dict[str, str], state: dict,
               held: dict[str, str]) -> None:
    """Record the remote's store refs; drop tracking copies of refs it no longer has
    (a retired feed) once what they held is merged. Call under the store lock."""
    from beadsmail.store.remote import remove_tracking, set_tracking

    if rem.name is None:
        return
    for ref, sha in theirs.items():
        if held.get(ref) != sha:
            set_tracking(ws.loc.common, tracking(rem.name, ref), sha)
    for ref, sha in held.items():
        if ref not in theirs and (ref == ws.ref or state["merged"].get(ref) == sha):
            remove_tracking(ws.loc.common, tracking(rem.name, ref), sha)


# -- pushing ------------------------------------------------------------------------------


def updates(ws: Workspace, theirs: dict[str, str], pulled: bool,
            report: dict) -> tuple[dict[str, tuple[str | None, str | None]], frozenset[str]]:
    """The ref updates to push: our feed, and (best effort) the view to the old branch."""
    from beadsmail.store import feeds as feeds_mod
    from beadsmail.store.merge import relation

    out: dict[str, tuple[str | None, str | None]] = {}
    mine = my_feed(ws)
    with ws.lock():
        view = ws.writer.head()
        if mine is not None:
            remote_tip = theirs.get(mine)
            local_tip = read_ref(ws.loc.common, mine)
            if not pulled and remote_tip and not feeds_mod.descends(
                    ws.writer, local_tip.encode() if local_tip else None, remote_tip.encode()):
                raise RemoteError(f"the remote's {mine} holds records this clone lacks, so "
                                  "--push-only cannot push; run 'bd sync' without --push-only")
            tip = feeds_mod.build(ws.writer, mine, view, mine.rsplit("/", 1)[1],
                                  remote_tip.encode() if remote_tip and pulled else None)
            state = load_state(ws)
            state["built_from"] = view.decode() if view else None
            if tip is not None:
                state["merged"][mine] = tip.decode()
                if theirs.get(mine) != tip.decode():
                    out[mine] = (theirs.get(mine), tip.decode())
            save_state(ws, state)
    legacy = theirs.get(ws.ref)
    mode = legacy_mode(ws)
    archive = bool(retirements(ws, theirs))  # the old branch keeps what retired feeds held
    if view is not None and mode != "never" and (legacy or mode == "always" or archive) and \
            legacy != view.decode() and relation(ws.writer, view, legacy.encode() if legacy
                                                 else None) in ("ahead", "none"):
        out[ws.ref] = (legacy, view.decode())
    report["feed"] = mine
    return out, frozenset({ws.ref})


def retirements(ws: Workspace, theirs: dict[str, str]) -> dict[str, tuple[str, None]]:
    """Feeds of replicas gone for ``sync.retire_after_days`` (this clone merged their
    newest commit that long ago; commit dates, written by others, are not trusted):
    ``ref: (commit, None)``, to delete from the remote once its old branch holds them.
    None while ``sync.legacy_branch`` is ``never``."""
    days = ws.config["sync"].get("retire_after_days", 90)
    if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
        raise InvalidInput(f"sync.retire_after_days {days!r} must be a number of days >= 0 "
                           "(0: never retire); fix .beads/config.yaml")
    if not days or legacy_mode(ws) == "never":
        return {}
    cutoff = time.time() - days * 86400
    state, mine = load_state(ws), my_feed(ws)
    return {ref: (sha, None) for ref, sha in sorted(theirs.items())
            if ref not in (ws.ref, mine) and state["merged"].get(ref) == sha
            and state["since"].get(ref, cutoff) < cutoff}


def retire(ws: Workspace, transport, rem, theirs: dict[str, str], report: dict) -> None:
    """Delete the remote's feeds of long-gone replicas, once its old branch holds all we do.

    Each deletion expects the feed's commit, so a replica that came back meanwhile
    keeps its ref (and one that returns later simply creates it again)."""
    from beadsmail.store.remote import remove_tracking

    gone = retirements(ws, theirs)
    view = read_ref(ws.loc.common, ws.ref)
    if not gone or view is None or report.get("remote_head") != view:
        return
    warnings = transport.push(rem, gone, frozenset(gone))
    report["retired"] = sorted(ref for ref in gone if not any(ref in w for w in warnings))
    if rem.name is not None:
        with ws.lock():
            for ref in report["retired"]:
                remove_tracking(ws.loc.common, tracking(rem.name, ref), gone[ref][0])


def pushed(ws: Workspace, rem, done: dict[str, tuple[str | None, str | None]],
           report: dict) -> None:
    """Account for refs the push moved: the report, and their tracking copies."""
    from beadsmail.store.merge import new_records
    from beadsmail.store.remote import set_tracking

    mine = report.get("feed")
    for ref, (old, new) in done.items():
        if ref == mine and new:
            report["sent"] += new_records(ws.writer, old.encode() if old else None, new.encode(),
                                          ws.limits)
            report["feed_head"] = new
        if ref == ws.ref:
            report["remote_head"] = new
            report["legacy_pushed"] = True
    if rem.name is not None:
        with ws.lock():
            for ref, (_, new) in done.items():
                if new:
                    set_tracking(ws.loc.common, tracking(rem.name, ref), new)


# -- the no-op fast path ----------------------------------------------------------------------


def unchanged(ws: Workspace, token: str, remote_common) -> bool:
    """Nothing to fetch, merge or push with a remote on this machine (ref files only)."""
    branch = ws.ref
    theirs = {ref: sha for ref, sha in store_heads(remote_common, branch).items()
              if ref == branch or ref.startswith(feed_prefix(branch))}
    ours = tracked(ws, token)
    if theirs != ours:
        return False
    state = load_state(ws)
    view = read_ref(ws.loc.common, branch)
    mine = my_feed(ws)
    if mine is not None and (state["built_from"] != view or
                             theirs.get(mine) != read_ref(ws.loc.common, mine)):
        return False
    if any(state["merged"].get(ref) != sha for ref, sha in theirs.items() if ref != branch):
        return False
    legacy = theirs.get(branch)
    return legacy is None or (state["merged"].get(branch) == legacy and
                              (legacy == view or legacy_mode(ws) == "never"))
