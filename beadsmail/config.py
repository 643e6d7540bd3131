"""Configuration: ``.beads/config.yaml`` in the worktree, defaults for the rest.

beads users' ``.beads/config.json`` is read too (its ``identity`` key). Parsed
YAML is cached as JSON in the common git dir, keyed by the file's size and
mtime, so most commands never import a YAML parser.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from beadsmail.errors import InvalidInput

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    from typing import Any

DEFAULTS: dict[str, Any] = {
    "identity": None,
    "store": {
        "branch": "beadsmail",
        "id_prefix": "bd-",
        "segment_bytes": 1 << 20,
        "pack_after": 2000,
        "fsync": False,
        "lock_timeout": 120,
    },
    "hooks": {"timeout": 10, "budget": None},
    "sync": {"remote": "origin", "auto": False, "legacy_branch": "auto",
             "retire_after_days": 90},
    "agents": {"stalled_after": 300, "heartbeat_interval": 60, "default_role": "worker"},
    "tasks": {"strict_roles": False},
    "acl": {"contacts": False},
    "mail": {"max_body": 65536, "strict": False},
    "reservations": {"ttl": "2h"},
    "boundary": {"line_bytes": 1 << 20, "depth": 32, "blob_bytes": 16 << 20,
                 "tree_entries": 20_000},
    # signed feeds (beadsmail/signing): policy off | warn | require, and where this
    # replica's private key lives (None: <common git dir>/beadsmail/signing_key)
    "security": {"signatures": "warn", "key": None},
}


def _copy(value: Any) -> Any:
    """A deep copy of settings (mappings, lists and scalars; no ``copy`` import at start-up)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return [_copy(v) for v in value] if isinstance(value, list) else value


def _path_key(path: Path) -> str:
    """A short stable name for a path (FNV-1a; no ``zlib`` import at start-up)."""
    h = 0x811C9DC5
    for byte in str(path).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


def _merge(base: dict, over: dict) -> dict:
    out = _copy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _load_yaml(path: Path, cache_dir: Path | None) -> dict:
    st = path.stat()
    stamp = f"{st.st_size}:{st.st_mtime_ns}"
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"config-{_path_key(path)}.json"
        try:
            cached = json.loads(cache.read_text("utf-8"))
            if cached.get("path") == str(path) and cached.get("stamp") == stamp:
                return cached["data"]
        except (OSError, ValueError, KeyError):
            pass
    import yaml

    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: not valid YAML ({exc.__class__.__name__}); fix or remove it") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: must hold a mapping of settings")
    if cache is not None and cache_dir is not None and cache_dir.is_dir():
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"path": str(path), "stamp": stamp, "data": data}), "utf-8")
            os.replace(tmp, cache)
        except (OSError, TypeError, ValueError):
            tmp.unlink(missing_ok=True)
    return data


def load(worktree: Path | None, cache_dir: Path | None = None,
         notices: list[str] | None = None) -> dict[str, Any]:
    """Settings for a worktree: defaults, then config.json's identity, then config.yaml.

    The settings that execute or send data elsewhere (``approvals.EXEC_KEYS``) take
    effect only when this clone approved them (``cache_dir`` holds the approvals); else
    they keep their defaults and a warning is added to ``notices`` (once per content).
    """
    config = _copy(DEFAULTS)
    if worktree is None:
        return config
    beads = worktree / ".beads"
    legacy = beads / "config.json"
    if legacy.is_file():
        try:
            data = json.loads(legacy.read_text("utf-8"))
        except ValueError:
            raise InvalidInput(f"{legacy}: not valid JSON; fix or remove it") from None
        if isinstance(data, dict) and data.get("identity"):
            config["identity"] = data["identity"]
    path = beads / "config.yaml"
    if path.is_file():
        data = _load_yaml(path, cache_dir)
        config = _merge(config, data)
        _hold_unapproved(config, path, data, cache_dir, notices)
    return config


def _hold_unapproved(config: dict, path: Path, data: dict, cache_dir: Path | None,
                     notices: list[str] | None) -> None:
    from beadsmail import approvals

    values = {name: value for name, value in approvals.exec_settings(data).items()
              if value != DEFAULTS[name.split(".")[0]][name.split(".")[1]]}
    allowed, notice = approvals.check_settings(cache_dir, path, values)
    if allowed:
        return
    for name in values:
        section, key = name.split(".")
        config[section][key] = DEFAULTS[section][key]
    if notice and notices is not None:
        notices.append(notice)


def exec_values(worktree: Path) -> tuple[Path, dict]:
    """The config file of a worktree and the exec-capable settings it sets (not defaults)."""
    from beadsmail import approvals

    path = worktree / ".beads" / "config.yaml"
    data = _load_yaml(path, None) if path.is_file() else {}
    return path, {name: value for name, value in approvals.exec_settings(data).items()
                  if value != DEFAULTS[name.split(".")[0]][name.split(".")[1]]}


TEMPLATE = """\
# beadsmail settings for this worktree (all optional; defaults shown).
# identity: worker-1          # who 'bd' acts as here (else BEADS_IDENTITY, else your user name)
store:
  branch: beadsmail           # the store ref: refs/heads/<branch>
  id_prefix: bd-              # prefix of new ids
  segment_bytes: 1048576      # a segment file rolls past this size
  pack_after: 2000            # loose objects before a background 'git repack'
  fsync: false                # fsync objects before moving the ref
  lock_timeout: 120           # seconds a writer waits for the store lock before giving up
hooks:
  timeout: 10                 # seconds before a hook is killed
  # budget: 10                # seconds one command spends in hooks in all (default: timeout)
sync:
  remote: origin              # default remote of 'bd sync'
  auto: false                 # sync in the background after each write
  legacy_branch: auto         # push the merged view to the one-branch layout: auto|always|never
  retire_after_days: 90       # delete feeds idle this long from the remote (0: never)
agents:
  stalled_after: 300          # seconds without a sign of life before an agent is stalled
  heartbeat_interval: 60      # seconds between committed heartbeats
  default_role: worker        # role of identities that never registered
tasks:
  strict_roles: false         # true: only managers and reviewers move tasks (bttask's matrix);
                              # false: a task's assignee may move it too
acl:
  contacts: false             # only message contacts (tier 1 agents exempt)
mail:
  max_body: 65536             # bytes
  strict: false               # refuse mail that would be a dead letter (a typo in an address)
reservations:
  ttl: 2h                     # how long 'bd reserve' holds a lease unless --ttl says
security:
  signatures: warn            # off | warn | require (docs/security.md); off needs 'bd hooks trust'
  # key: ~/.ssh/beadsmail     # sign with this Ed25519 key file (needs 'bd hooks trust')
boundary:                     # bounds on what is read from git (docs/security.md)
  line_bytes: 1048576         # bytes per record line
  depth: 32                   # JSON nesting levels per record
  blob_bytes: 16777216        # bytes per segment file
  tree_entries: 20000         # entries per directory of .beads/log
"""
