"""What ``bd doctor`` looks for beyond bad lines, and what ``--fix`` may change.

Findings are plain dicts naming the file and line or the object id. Repairs
never delete user data: a stale lock file left by a killed process is removed
(it holds no data); a line that cannot be read is *moved* out of this replica's
segment into ``.beads/quarantine/<replica>/<segment>`` in the same commit, so it
stays in the store (and in history) while no longer counting as damage; a
record changed in place by hand in one of this replica's segments gets its
stored copy back (the edited line goes to quarantine); a record whose line was
removed by hand is appended again from the index. Only the owning replica ever
rewrites a segment, so damage in another replica's segment is reported with the
replica that can repair it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from beadsmail.workspace import Workspace

OBJECT_LOCK_AGE = 10.0  # seconds; an object lock file lives for microseconds
PACKED_REFS_LOCK_AGE = 60.0


def stale_locks(ws: Workspace) -> list[dict]:
    """Lock files left behind by a process that died: store and tracking refs, objects.

    ``blocks`` says whether it is in anyone's way: a ref's lock stops git commands
    (beadsmail writers break it themselves); an object's is only litter (the
    background packer sweeps it) that ``git fsck`` mentions."""
    from beadsmail.store.writer import STALE_LOCK_AGE

    common = ws.loc.common
    candidates = [(common / (ref + ".lock"), STALE_LOCK_AGE) for ref in {ws.ref, *ws.heads()}]
    short = ws.ref.removeprefix("refs/heads/")
    remotes = common / "refs" / "remotes"
    if remotes.is_dir():
        candidates += [(r / (short + ".lock"), STALE_LOCK_AGE) for r in remotes.iterdir()]
    candidates.append((common / "packed-refs.lock", PACKED_REFS_LOCK_AGE))
    objects = common / "objects"
    candidates += [(p, OBJECT_LOCK_AGE) for p in objects.glob("[0-9a-f][0-9a-f]/*.lock")]
    now = time.time()
    found = []
    for path, age in candidates:
        try:
            mtime = path.stat().st_mtime
        except (FileNotFoundError, NotADirectoryError):
            continue
        if now - mtime > age:
            found.append({"path": str(path), "age_seconds": round(now - mtime, 1),
                          "blocks": path.parent.parent != objects})
    return found


def remove_locks(ws: Workspace) -> list[str]:
    """Under the store lock (no beadsmail writer is running), remove the stale lock files."""
    removed = []
    with ws.lock():
        for lock in stale_locks(ws):
            Path(lock["path"]).unlink(missing_ok=True)
            removed.append(lock["path"])
    return removed


def missing_objects(ws: Workspace, heads: dict[str, str]) -> list[dict]:
    """Objects the store heads need that the repository lacks: commit, tree or segment blob."""
    from beadsmail import boundary

    writer = ws.writer
    missing: dict[str, dict] = {}
    for ref, sha in sorted(heads.items()):
        try:
            found = boundary.walk(writer, None, sha.encode(), ws.limits)
        except KeyError as exc:
            oid = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            missing.setdefault(oid, {"object": oid, "path": None, "head": ref,
                                     "what": "a commit or tree of the store"})
            continue
        for rejection in found.rejected:
            if "is missing from the repository" in rejection.why:
                oid = rejection.why.split()[1]
                missing.setdefault(oid, {"object": oid, "path": None, "head": ref,
                                         "what": "a commit or tree of the store"})
        for path, blob in found.segments:
            if not writer.has_object(blob):
                oid = blob.decode()
                missing.setdefault(oid, {"object": oid, "path": path, "head": ref,
                                         "what": "segment"})
    return sorted(missing.values(), key=lambda m: (m["path"] or "", m["object"]))


def edits(ws: Workspace, fresh: dict[str, tuple[str | None, int | None, str]]) -> list[dict]:
    """Records the index holds whose line was changed or removed in the store afterwards."""
    found = []
    for rid, path, line, text in ws.index.texts():
        now = fresh.get(rid)
        if now is None:
            found.append({"id": rid, "path": path, "line": line, "change": "removed",
                          "stored": text})
        elif now[2] != text:
            found.append({"id": rid, "path": now[0], "line": now[1], "change": "changed",
                          "stored": text})
    return found


def _owned(ws: Workspace, path: str | None) -> bool:
    return bool(path) and path.split("/", 1)[0] == ws.replica  # type: ignore[union-attr]


def fix_lines(ws: Workspace, bad: list[dict], changed: list[dict], actor: str) -> list[dict]:
    """Quarantine bad lines and restore changed records in this replica's own segments."""
    plans: dict[str, dict[int, bytes | None]] = defaultdict(dict)  # path -> line -> replacement
    for b in bad:
        if b["line"] > 0 and _owned(ws, b["path"]):
            plans[b["path"]][b["line"]] = None
    for e in changed:
        if e["change"] == "changed" and _owned(ws, e["path"]):
            plans[e["path"]][e["line"]] = e["stored"].encode()
    done = []
    writer = ws.writer
    from beadsmail import boundary

    own = boundary.segments(writer, writer.head(), ws.limits)
    for path, lines in sorted(plans.items()):
        content = boundary.read_blob(writer, path, own[path], ws.limits) if path in own else None
        if not isinstance(content, bytes):
            continue
        kept, moved = _split(content, lines)
        replica, name = path.split("/", 1)
        writer.quarantine(replica, name, kept, moved, f"doctor: quarantine {len(lines)} line(s) "
                          f"of {path}", actor)
        done += [{"path": path, "line": n, "action": "restored" if lines[n] else "quarantined"}
                 for n in sorted(lines)]
    return done


def _split(content: bytes, lines: dict[int, bytes | None]) -> tuple[bytes, bytes]:
    """(segment without the given lines, or with their replacement; the lines taken out)."""
    parts = content.split(b"\n")
    rest = parts.pop()
    if rest:
        parts.append(rest)
    kept, moved = [], []
    for n, raw in enumerate(parts, 1):
        if n in lines:
            moved.append(raw)
            if lines[n] is not None:
                kept.append(lines[n])
        else:
            kept.append(raw)
    return b"".join(k + b"\n" for k in kept), b"".join(m + b"\n" for m in moved)


def restore_removed(ws: Workspace, changed: list[dict], actor: str) -> list[dict]:
    """Append records whose line was removed by hand back to this replica's segment."""
    removed = [e for e in changed if e["change"] == "removed"]
    if not removed:
        return []
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    _, path = ws.writer.append(ws.replica, [e["stored"].encode() for e in removed],
                               f"doctor: restore {len(removed)} removed record(s)", actor, day,
                               int(ws.config["store"]["segment_bytes"]))
    return [{"id": e["id"], "path": path, "action": "restored"} for e in removed]


# -- what other replicas' data this clone refused --------------------------------------

SET_ASIDE = "set-aside.json"


def owned_finding(ws: Workspace, finding: dict) -> bool:
    """Whether a finding is about this clone's own data: a line of one of its own
    segments, or a missing object. Everything else came from elsewhere."""
    path = finding.get("path") or ""
    if finding.get("ref") not in (None, ws.ref):
        return False  # found in a copy another clone published, not in this clone's ref
    if "is missing from the repository" in finding.get("error", ""):
        return True
    return path.startswith(ws.replica + "/") and (finding.get("line") or 0) > 0 \
        or finding.get("change") is not None and _owned(ws, path)


def aside_key(finding: dict) -> str:
    return f"{finding['path']}:{finding['line']}:{finding['error']}"


def set_aside(ws: Workspace) -> set[str]:
    """The refused items ``bd doctor --fix`` set aside (a local list; history is git's)."""
    import json

    try:
        return set(json.loads((ws.loc.state_dir / SET_ASIDE).read_text("utf-8")))
    except (OSError, ValueError, TypeError):
        return set()


def put_aside(ws: Workspace, findings: list[dict]) -> list[dict]:
    import json
    import os

    keys = set_aside(ws) | {aside_key(f) for f in findings}
    path = ws.loc.state_dir / SET_ASIDE
    tmp = path.with_name(f"{SET_ASIDE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(sorted(keys), ensure_ascii=False), "utf-8")
    os.replace(tmp, path)
    return [{"path": f["path"], "line": f["line"], "action": "set aside (refused from another "
             "replica; history keeps it)"} for f in findings]
