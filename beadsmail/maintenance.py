"""Set-up and upkeep of a store: init, where, index rebuild, doctor."""

from __future__ import annotations

import json
import os
from pathlib import Path

from beadsmail import config as config_mod
from beadsmail.errors import InvalidInput, NotARepository
from beadsmail.index import Index
from beadsmail.index import feeds as feeds_index
from beadsmail.store import locate, replica_id
from beadsmail.workspace import Workspace


def locate_target(path: str | os.PathLike[str] | None) -> Path:
    if "\x00" in os.fspath(path or ""):
        raise InvalidInput("the path contains a NUL character; give a plain directory path")
    return Path(path or os.getcwd()).resolve()


def init(path: str | os.PathLike[str] | None = None, branch: str | None = None) -> dict:
    """Create the store branch (and the git repository first, in a plain directory)."""
    target = locate_target(path)
    created_repo = False
    try:
        locate(target)
    except NotARepository:
        from beadsmail.store.writer import init_repository

        target.mkdir(parents=True, exist_ok=True)
        init_repository(target)
        created_repo = True
    ws = Workspace.open(target)
    if branch:
        ws.ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
    created_store = ws.writer.create_store("bd init")
    wrote_config = False
    if ws.loc.worktree is not None:
        cfg = ws.loc.worktree / ".beads" / "config.yaml"
        if not cfg.exists():
            cfg.parent.mkdir(parents=True, exist_ok=True)
            text = config_mod.TEMPLATE
            if branch:
                text = text.replace("branch: beadsmail ", f"branch: {branch}".ljust(len("branch: beadsmail ")))
            cfg.write_text(text, "utf-8")
            wrote_config = True
    replica_id(ws.loc)
    ws.refresh()
    return {
        "repository": str(ws.loc.worktree or ws.loc.gitdir),
        "created_repository": created_repo,
        "created_store": created_store,
        "ref": ws.ref,
        "head": ws.writer.head().decode(),
        "config": str(ws.loc.worktree / ".beads" / "config.yaml") if ws.loc.worktree else None,
        "wrote_config": wrote_config,
    }


def where(ws: Workspace) -> dict:
    """Where everything is, and how many records of each kind the store holds."""
    ws.refresh()
    heads = ws.heads()
    return {
        "repository": str(ws.loc.worktree) if ws.loc.worktree else None,
        "git_dir": str(ws.loc.gitdir),
        "common_dir": str(ws.loc.common),
        "ref": ws.ref,
        "head": heads.get(ws.ref),
        "remote_heads": {k: v for k, v in heads.items() if k != ws.ref},
        "replica": replica_id(ws.loc, create=False),
        "index": str(ws.index_path),
        "records": ws.index.counts(),
        "bad_lines": len(ws.index.bad_lines()),
    }


def rebuild(ws: Workspace) -> dict:
    """Throw the index away and fold the whole store again."""
    with ws.lock():
        ws.rebuild_index()
    return {"index": str(ws.index_path), "records": ws.index.counts(),
            "bad_lines": ws.index.bad_lines()}


class _Fresh:
    """The store folded from nothing into a throw-away index: what the index should be."""

    def __init__(self, ws: Workspace) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="beadsmail-doctor-") as tmp:
            fresh = Workspace(ws.loc, ws.config)
            fresh._index = Index(Path(tmp) / "index.sqlite3")
            try:
                fresh.refresh()
                self.fingerprint = fresh.index.fingerprint()
                self.bad = fresh.index.bad_lines()
                self.feed_problems = feeds_index.problems(fresh.index.conn)
                self.texts = {rid: (path, line, text) for rid, path, line, text
                              in fresh.index.texts()}
                for p in self.feed_problems:  # (a line verification refused is still there)
                    if p["id"] and p["id"] not in self.texts and p["line"]:
                        self.texts[p["id"]] = (p["path"], p["line"], p["text"])
            finally:
                fresh.close()


def _schema_problems(ws: Workspace) -> list[dict]:
    """Cross-check every indexed record with the jsonschema library itself."""
    import jsonschema

    from beadsmail import schemas

    validators = {k: jsonschema.Draft202012Validator(schemas.load(k)) for k in schemas.KINDS}
    problems = []
    for record in ws.index.all_records():
        error = jsonschema.exceptions.best_match(validators[record["kind"]].iter_errors(record))
        if error is not None:
            path, line = ws.index.record_location(record["id"]) or ("?", 0)
            problems.append({"path": path, "line": line, "error": error.message})
    return problems


DOCTOR_ACTOR = "beadsmail"


class _Report:
    def __init__(self) -> None:
        self.checks: list[dict] = []
        self.repairs: list[dict] = []
        self.data: dict = {"bad_lines": [], "missing_objects": [], "edits": [], "locks": [],
                           "rejected": [], "set_aside": [], "copies": []}

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"check": name, "ok": ok, "detail": detail})

    def result(self, fixed: bool) -> dict:
        return {"ok": all(c["ok"] for c in self.checks), "checks": self.checks, **self.data,
                "repairs": self.repairs, "fixed": fixed}


def _check_locks(ws: Workspace, report: _Report, fix: bool) -> None:
    from beadsmail import repair

    locks = repair.stale_locks(ws)
    if fix and locks:
        report.repairs += [{"path": p, "action": "removed stale lock"}
                           for p in repair.remove_locks(ws)]
        locks = repair.stale_locks(ws)
    report.data["locks"] = locks
    report.check("locks", not any(lk["blocks"] for lk in locks), "; ".join(
        f"{lk['path']} left behind {lk['age_seconds']}s ago" for lk in locks)
        + "; run 'bd doctor --fix' to remove" if locks else "no stale lock files")


def _check_objects(ws: Workspace, report: _Report, heads: dict[str, str]) -> bool:
    """Report missing objects by id; False when a head cannot be read at all."""
    from beadsmail import repair

    missing = repair.missing_objects(ws, heads)
    report.data["missing_objects"] = missing
    report.check("objects", not missing, "; ".join(
        f"object {m['object']} ({'segment ' + m['path'] if m['path'] else m['what']}) is missing"
        for m in missing) + " (copy it from a clone that has it, e.g. 'git fetch' from there "
        "into a new repository and 'git cat-file' it across)" if missing
        else f"{len(heads)} head(s) readable")
    return not any(m["path"] is None for m in missing)


def _check_records(ws: Workspace, report: _Report, fresh: _Fresh) -> list[dict]:
    """Bad lines, records edited or removed by hand, jsonschema cross-check; the edits.

    Only this clone's own data can fail these checks: what the boundary refused from
    other replicas (and their records rewritten elsewhere) is listed under ``rejected``
    by ``_check_rejected`` and harms nothing here."""
    from beadsmail import repair

    bad = [b for b in fresh.bad if repair.owned_finding(ws, b)]
    report.check("records", not bad, f"{len(bad)} bad line(s)" if bad
                 else f"{len(fresh.fingerprint['records'])} records valid")
    ws.refresh()
    changed = repair.edits(ws, fresh.texts)
    foreign = [e for e in changed if not repair.owned_finding(ws, e)]
    changed = [e for e in changed if repair.owned_finding(ws, e)]
    report.data["edits"] = [{k: e[k] for k in ("id", "path", "line", "change")} for e in changed]
    report.check("edits", not changed, "; ".join(
        f"{e['path']}:{e['line']}: record {e['id']} was {e['change']} by hand after it was stored"
        for e in changed) if changed else "no stored record changed or removed")
    _check_signatures(ws, report, fresh)
    problems = _schema_problems(ws) if fresh.fingerprint["records"] else []
    report.check("schemas", not problems, f"{len(problems)} record(s) fail jsonschema"
                 if problems else "jsonschema agrees")
    report.data["bad_lines"] = bad + problems
    _check_rejected(ws, report, [b for b in fresh.bad if not repair.owned_finding(ws, b)] + [
        {"path": e["path"], "line": e["line"], "ref": None, "commit": None, "text": "",
         "error": f"record {e['id']} differs from the copy this clone holds (kept)"}
        for e in foreign])
    return changed


def _check_rejected(ws: Workspace, report: _Report, rejected: list[dict]) -> None:
    """What the boundary refused from other replicas: named, never a failure here."""
    from beadsmail import repair

    aside = repair.set_aside(ws)
    report.data["rejected"] = [r for r in rejected if repair.aside_key(r) not in aside]
    report.data["set_aside"] = [r for r in rejected if repair.aside_key(r) in aside]
    new = report.data["rejected"]
    report.check("rejected", True, (
        f"{len(new)} item(s) from other replicas refused and skipped (listed below; they "
        "harm nothing here); 'bd doctor --fix' sets them aside") if new else
        f"nothing refused from other replicas ({len(report.data['set_aside'])} set aside)")


def _check_signatures(ws: Workspace, report: _Report, fresh: _Fresh) -> None:
    """Every line verification refused or did not fold (signing.feed, signing.reader), with
    replica, segment and line; lines missing from a feed are reported on the line after.
    Like what the boundary refuses, what others forged is named and harms nothing here (it
    is not folded); a signed line of this replica's own feed that fails (a hand edit, a
    lost object) fails the check."""
    found = fresh.feed_problems
    report.data["signatures"] = found
    own = [p for p in found if p["status"] in ("forged", "broken")
           and p["path"].split("/", 1)[0] == ws.replica and p["ref"] in (None, ws.ref)
           and p["seq"] is not None]  # (a signed line of ours: an unsigned one is not ours)
    report.check("signatures", not own, "; ".join(
        f"{p['path']}:{p['line']}: {p['status']}: {p['why']}" for p in found[:20])
        + (f" ... and {len(found) - 20} more" if len(found) > 20 else "")
        if found else "every signed feed verifies")


def _check_copies(ws: Workspace, report: _Report) -> None:
    """Records held outside their replica's directory or met with other copies (the rule
    that picks the copy every clone holds is ``index.copies``): named, never a failure
    here (no clone can repair another replica's records; signatures decide later)."""
    from beadsmail.index import copies

    found = copies.findings(ws.index.conn)
    report.data["copies"] = found
    report.check("copies", True, (
        f"{len(found)} record(s) out of place or with conflicting copies (listed below); "
        "every clone holds the same copy of each") if found else
        "every record sits in its replica's directory, one copy of each id")


def _repair_lines(ws: Workspace, report: _Report, fresh: _Fresh, changed: list[dict]) -> bool:
    """Quarantine/restore what this replica owns; True if anything was written."""
    from beadsmail import repair

    with ws.lock():
        done = repair.fix_lines(ws, fresh.bad, changed, DOCTOR_ACTOR)
        done += repair.restore_removed(ws, changed, DOCTOR_ACTOR)
    report.repairs += done

    return bool(done)


def _owned_bad(ws: Workspace, finding: dict) -> bool:
    from beadsmail import repair

    return repair.owned_finding(ws, finding)


def _folded(fingerprint: dict) -> dict:
    """What must equal a fresh fold: all but ``copies``. A copy met once and gone from
    every head since (a repeated line a merge dropped, a line rewritten) stays named, as
    a record does; that is the index remembering, not the index being wrong."""
    return {k: v for k, v in fingerprint.items() if k != "copies"}


def doctor(ws: Workspace, fix: bool = False) -> dict:
    """Check locks, objects, every record and the index; ``fix`` repairs without deleting data."""
    report = _Report()
    heads = ws.heads()
    report.check("store ref", ws.ref in heads or not heads,
                 heads.get(ws.ref, "no store yet (the first write creates it)"))
    _check_locks(ws, report, fix)
    if not _check_objects(ws, report, heads):
        return report.result(False)
    fresh = _Fresh(ws)
    changed = _check_records(ws, report, fresh)
    _check_copies(ws, report)
    if fix and report.data["rejected"]:
        from beadsmail import repair

        report.repairs += repair.put_aside(ws, report.data["rejected"])
        report.data["set_aside"] += report.data["rejected"]
        report.data["rejected"] = []
    bad_owned = [b for b in fresh.bad if _owned_bad(ws, b)]
    if fix and (bad_owned or changed) and _repair_lines(ws, report, fresh, changed):
        if not any(r["action"] == "left for their owner" for r in report.repairs):
            ws.index.reset()  # the stored copies are back in the store: fold them from there
            ws.index.rebuilt = False  # on purpose, not because it was unreadable
        return {**doctor(ws, False), "repairs": report.repairs, "fixed": True}
    rebuilt_silently = ws.index.rebuilt
    same = _folded(ws.index.fingerprint()) == _folded(fresh.fingerprint)
    fixed = False
    if not same and fix and not changed:  # a rebuild would forget the copies the edits replaced
        rebuild(ws)
        fixed = same = _folded(ws.index.fingerprint()) == _folded(fresh.fingerprint)
        report.repairs.append({"path": str(ws.index_path), "action": "rebuilt the index"})
    report.check("index", same, ("was missing or unreadable and has been rebuilt; " if
                                 rebuilt_silently else "") + ("equal to a fresh fold" if same
                 else "differs from a fresh fold; run 'bd doctor --fix'"))
    return report.result(fixed or bool(report.repairs))


def show_record(ws: Workspace, token: str) -> dict:
    ws.refresh()
    record_id = ws.index.resolve(token, ws.prefix)
    record = ws.index.record(record_id)
    assert record is not None
    return record


def dumps_pretty(record: dict) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True)

