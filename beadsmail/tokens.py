"""Agent tokens: local secrets that let an agent use ``bd serve`` from another host.

A token is ``bdt_<id>_<secret>``. Only a SHA-256 of the secret is kept, in
``<common git dir>/beadsmail/tokens.json`` (mode 0600): the state directory that
is never committed, never synced and shared by every worktree of the clone. The
secret is shown once, when the token is created. A token names the one agent
identity it acts as; revoking it keeps the entry (with ``revoked_at``) so
``list --all`` can show the history. Edits take a small file lock and replace
the file atomically; readers (the server) reload it when its mtime changes, so
a revocation takes effect at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from beadsmail import records
from beadsmail.errors import Ambiguous, InvalidInput, NotFound, PermissionDenied

FILE = "tokens.json"
PREFIX = "bdt_"


def _path(state_dir: Path) -> Path:
    return Path(state_dir) / FILE


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _load(state_dir: Path) -> list[dict]:
    try:
        data = json.loads(_path(state_dir).read_text("utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{_path(state_dir)} is unreadable ({exc.__class__.__name__}); "
                           "move it away and create the tokens again") from None
    return list(data.get("tokens", [])) if isinstance(data, dict) else []


@contextmanager
def _editing(state_dir: Path):
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "tokens.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        tokens = _load(state_dir)
        yield tokens
        tmp = state_dir / f"tokens.{os.getpid()}.tmp"
        fd_tmp = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd_tmp, "w", encoding="utf-8") as fh:
            json.dump({"tokens": tokens}, fh, indent=1, sort_keys=True)
        os.replace(tmp, _path(state_dir))
    finally:
        os.close(fd)


def _public(entry: dict) -> dict:
    return {k: entry.get(k) for k in ("id", "agent", "label", "created_at", "revoked_at")}


def create(state_dir: Path, agent: str, label: str | None = None) -> dict:
    """Make a token for ``agent``; the only time its secret is returned."""
    records.check_identity(agent, "agent id")
    if label is not None and len(label) > 200:
        raise InvalidInput("a token label is at most 200 characters; shorten it")
    token_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    entry = {"id": token_id, "agent": agent, "label": label, "created_at": records.now_iso(),
             "revoked_at": None, "sha256": _digest(secret)}
    with _editing(state_dir) as tokens:
        tokens.append(entry)
    return {**_public(entry), "token": f"{PREFIX}{token_id}_{secret}"}


def list_tokens(state_dir: Path, include_revoked: bool = False) -> list[dict]:
    return [_public(t) for t in _load(state_dir) if include_revoked or not t.get("revoked_at")]


def _find(tokens: list[dict], token_id: str) -> dict:
    token_id = token_id.strip().lower()
    if token_id.startswith(PREFIX):
        token_id = token_id[len(PREFIX):].split("_", 1)[0]
    found = [t for t in tokens if t["id"].startswith(token_id)] if token_id else []
    if not found:
        raise NotFound(f"no token with id {token_id!r}; list them with 'bd agent token list --all'")
    if len(found) > 1 and not any(t["id"] == token_id for t in found):
        raise Ambiguous(f"token id {token_id!r} is ambiguous; give more characters",
                        candidates=[t["id"] for t in found])
    return next((t for t in found if t["id"] == token_id), found[0])


def revoke(state_dir: Path, token_id: str) -> dict:
    """Revoke a token by id (or unique prefix); revoking twice is harmless."""
    with _editing(state_dir) as tokens:
        entry = _find(tokens, token_id)
        if not entry.get("revoked_at"):
            entry["revoked_at"] = records.now_iso()
    return _public(entry)


class TokenBook:
    """The server's view of the tokens file, reloaded whenever the file changes."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self._stamp: tuple[int, int] | None = None
        self._by_id: dict[str, dict] = {}

    def _reload(self) -> None:
        try:
            st = _path(self.state_dir).stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp or stamp is None:
            self._by_id = {t["id"]: t for t in _load(self.state_dir) if not t.get("revoked_at")}
            self._stamp = stamp

    def active(self) -> int:
        self._reload()
        return len(self._by_id)

    def verify(self, presented: str | None) -> str:
        """The agent a presented token acts as; PermissionDenied when it is not valid."""
        if not presented:
            raise PermissionDenied("this server requires an agent token: send 'Authorization: "
                                   "Bearer <token>' (create one with 'bd agent token create NAME')")
        self._reload()
        body = presented.strip()
        token_id, _, secret = body[len(PREFIX):].partition("_") if body.startswith(PREFIX) else ("", "", "")
        entry = self._by_id.get(token_id)
        if entry is None or not hmac.compare_digest(entry["sha256"], _digest(secret)):
            raise PermissionDenied("the agent token is unknown or revoked; create a new one with "
                                   "'bd agent token create NAME'")
        return entry["agent"]
