"""Approvals: what this clone agreed to run, by exact content (as direnv and mise do).

Hooks (``.beads/hooks/*``) and the settings that execute, send data elsewhere or
weaken verification (``EXEC_KEYS``, ``WEAKENING`` in ``.beads/config.yaml``) are
files of the working tree: a commit that anyone pushes, pulled with ``git pull``,
can add or change them.
So they take effect only once this clone approved their exact content
(``bd hooks trust``). An approval is the SHA-256 of the content, keyed by the
file's absolute path, kept in ``<common git dir>/beadsmail/approvals.json``:
never committed, never synced, shared by the worktrees of this clone.

Content that is not approved is reported once per content (``reported``), with
the command that approves it, and otherwise ignored: the hook does not run, the
settings keep their defaults.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

FILE = "approvals.json"
# Settings that run something, send the store elsewhere or weaken what is verified: they
# take effect only approved. ``security.key`` names the file this clone signs with (a
# pushed change could point it at a key someone else holds, or start a second feed);
# ``security.signatures`` only when it turns verification ``off`` (``require`` is stricter
# than the default, and needs no approval).
EXEC_KEYS = (("sync", "auto"), ("sync", "remote"), ("security", "key"))
WEAKENING = {("security", "signatures"): "off"}
APPROVE = "bd hooks trust"


def _load(state_dir: Path) -> dict:
    try:
        data = json.loads((state_dir / FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {"approved": {}, "reported": {}}
    if not isinstance(data, dict):
        return {"approved": {}, "reported": {}}
    for part in ("approved", "reported"):
        if not isinstance(data.get(part), dict):
            data[part] = {}
    return data


def _save(state_dir: Path, data: dict) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f"{FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", "utf-8")
    os.replace(tmp, state_dir / FILE)


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def settings_digest(values: dict) -> str:
    """The digest of the exec-capable settings' values (other settings never void it)."""
    return digest(json.dumps(values, sort_keys=True, ensure_ascii=False, default=str).encode())


def state(state_dir: Path, key: str, sha: str) -> str:
    """'approved', 'changed' (an earlier content was approved) or 'new'."""
    known = _load(state_dir)["approved"].get(key)
    return "approved" if known == sha else ("changed" if known else "new")


def approve(state_dir: Path, items: dict[str, str]) -> None:
    """Approve each ``key -> sha``."""
    data = _load(state_dir)
    data["approved"].update(items)
    _save(state_dir, data)


def revoke(state_dir: Path, keys: list[str]) -> list[str]:
    data = _load(state_dir)
    gone = [k for k in keys if data["approved"].pop(k, None) is not None]
    _save(state_dir, data)
    return gone


def first_report(state_dir: Path, key: str, sha: str) -> bool:
    """True the first time content ``sha`` of ``key`` goes unapproved (then remembered)."""
    data = _load(state_dir)
    if data["reported"].get(key) == sha:
        return False
    data["reported"][key] = sha
    try:
        _save(state_dir, data)
    except OSError:
        pass  # cannot remember it: reported again next time, which is harmless
    return True


def check_hook(state_dir: Path, path: Path) -> bool | str | None:
    """True when the hook at ``path`` may run; else the warning to show (once), or None."""
    try:
        sha = digest(path.read_bytes())
    except OSError as exc:
        return f"warning: hook {path} cannot be read: {exc.strerror or exc}; skipped"
    key = str(path.absolute())
    verdict = state(state_dir, key, sha)
    if verdict == "approved":
        return True
    if not first_report(state_dir, key, sha):
        return None
    what = "is new" if verdict == "new" else "changed since it was approved"
    return (f"warning: hook {path} {what} and did not run; read it, then approve it "
            f"with '{APPROVE}'")


def exec_settings(data: dict) -> dict:
    """The exec-capable settings a parsed config file sets: ``{"sync.auto": true, ...}``."""
    found = {}
    for section, key in EXEC_KEYS:
        part = data.get(section)
        if isinstance(part, dict) and key in part:
            found[f"{section}.{key}"] = part[key]
    for (section, key), weaker in WEAKENING.items():
        part = data.get(section)
        value = part.get(key) if isinstance(part, dict) else None
        if value == weaker or value is False:  # (YAML reads a bare ``off`` as false)
            found[f"{section}.{key}"] = weaker
    return found


def check_settings(state_dir: Path | None, path: Path, values: dict) -> tuple[bool, str | None]:
    """(whether the exec-capable ``values`` of config file ``path`` take effect, a warning
    to show once when they do not)."""
    if not values:
        return True, None
    sha = settings_digest(values)
    key = f"config:{path.absolute()}"
    if state_dir is None or not state_dir.is_dir():
        return False, None  # no store here yet: nothing is approved, nothing to remember
    verdict = state(state_dir, key, sha)
    if verdict == "approved":
        return True, None
    if not first_report(state_dir, key, sha):
        return False, None
    names = ", ".join(sorted(values))
    return False, (f"warning: {path} sets {names}, which {'is' if len(values) == 1 else 'are'} "
                   f"not approved here, so the default applies; read it, then approve it "
                   f"with '{APPROVE}'")


# -- what `bd hooks list/status/trust` show and do --------------------------------

def inventory(worktree: Path | None, state_dir: Path) -> dict:
    """Every hook file and the exec-capable settings of a worktree, each with its state."""
    from beadsmail import config

    hooks = []
    folder = worktree / ".beads" / "hooks" if worktree else None
    if folder is not None and folder.is_dir():
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            sha = digest(path.read_bytes())
            hooks.append({"name": path.name, "path": str(path.absolute()), "sha256": sha,
                          "state": state(state_dir, str(path.absolute()), sha),
                          "executable": os.access(path, os.X_OK)})
    settings = None
    if worktree is not None:
        path, values = config.exec_values(worktree)
        if values:
            sha = settings_digest(values)
            settings = {"path": str(path.absolute()), "values": values, "sha256": sha,
                        "state": state(state_dir, f"config:{path.absolute()}", sha)}
    waiting = [h["name"] for h in hooks if h["state"] != "approved"]
    if settings and settings["state"] != "approved":
        waiting.append("config.yaml")
    return {"hooks": hooks, "settings": settings, "unapproved": waiting,
            "approve": APPROVE if waiting else None}


def trust(worktree: Path | None, state_dir: Path, names: list[str] | None = None) -> dict:
    """Approve the current content of the named hooks (``config.yaml`` names the settings),
    or of every hook and the settings when no name is given."""
    from beadsmail.errors import InvalidInput

    found = inventory(worktree, state_dir)
    known = {h["name"]: h for h in found["hooks"]}
    wanted = list(names) if names else [*known, *(["config.yaml"] if found["settings"] else [])]
    missing = [n for n in wanted if n not in known and n != "config.yaml"]
    if missing or ("config.yaml" in wanted and not found["settings"] and names):
        what = ", ".join(missing) or "config.yaml (it sets no setting that needs approval)"
        raise InvalidInput(f"nothing to approve named {what}; see 'bd hooks list'")
    items, approved = {}, []
    for name in wanted:
        entry = found["settings"] if name == "config.yaml" else known[name]
        key = f"config:{entry['path']}" if name == "config.yaml" else entry["path"]
        items[key] = entry["sha256"]
        approved.append({"name": name, "path": entry["path"], "sha256": entry["sha256"],
                         "was": entry["state"]})
    if items:
        approve(state_dir, items)
    return {"approved": approved}
