"""Set-up and upkeep of a store: init, where, index rebuild, doctor."""

from __future__ import annotations

import json
import os
from pathlib import Path

from beadsmail import config as config_mod
from beadsmail.errors import BeadsError, NotARepository
from beadsmail.index import Index
from beadsmail.store import locate, replica_id
from beadsmail.workspace import Workspace


def init(path: str | os.PathLike[str] | None = None, branch: str | None = None) -> dict:
    """Create the store branch (and the git repository first, in a plain directory)."""
    target = Path(path or os.getcwd()).resolve()
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
        ws.index.reset()
        ws.refresh()
    return {"index": str(ws.index_path), "records": ws.index.counts(),
            "bad_lines": ws.index.bad_lines()}


def _fresh_fingerprint(ws: Workspace) -> tuple[dict, list[dict]]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="beadsmail-doctor-") as tmp:
        fresh = Workspace(ws.loc, ws.config)
        fresh._index = Index(Path(tmp) / "index.sqlite3")
        try:
            fresh.refresh()
            return fresh.index.fingerprint(), fresh.index.bad_lines()
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


def doctor(ws: Workspace, fix: bool = False) -> dict:
    """Check the ref, objects, every record and the index; with ``fix``, rebuild the index."""
    checks: list[dict] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append({"check": name, "ok": ok, "detail": detail})

    heads = ws.heads()
    check("store ref", ws.ref in heads or not heads,
          heads.get(ws.ref, "no store yet (the first write creates it)"))
    lock = ws.loc.common / (ws.ref + ".lock")
    if lock.exists():
        if fix:
            lock.unlink(missing_ok=True)
        check("ref lock", fix, f"{lock} left behind" + (" (removed)" if fix else "; run 'bd doctor --fix'"))
    try:
        for sha in heads.values():
            ws.writer.segments(sha.encode())
        check("objects", True, f"{len(heads)} head(s) readable")
        fresh, bad = _fresh_fingerprint(ws)
    except (KeyError, BeadsError, ValueError) as exc:
        check("objects", False, f"store object missing or unreadable: {exc}")
        return {"ok": False, "checks": checks, "bad_lines": [], "fixed": False}
    check("records", not bad, f"{len(bad)} bad line(s)" if bad else f"{len(fresh['records'])} records valid")
    problems = _schema_problems(ws) if fresh["records"] else []
    check("schemas", not problems, f"{len(problems)} record(s) fail jsonschema" if problems else "jsonschema agrees")
    ws.refresh()
    same = ws.index.fingerprint() == fresh
    fixed = False
    if not same and fix:
        rebuild(ws)
        fixed = same = ws.index.fingerprint() == fresh
    check("index", same, "equal to a fresh fold" if same else "differs from a fresh fold; run 'bd doctor --fix'")
    ok = all(c["ok"] for c in checks)
    return {"ok": ok, "checks": checks, "bad_lines": bad + problems, "fixed": fixed}


def show_record(ws: Workspace, token: str) -> dict:
    ws.refresh()
    record_id = ws.index.resolve(token, ws.prefix)
    record = ws.index.record(record_id)
    assert record is not None
    return record


def dumps_pretty(record: dict) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True)

