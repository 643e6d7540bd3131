"""Transport for sync: fetch and push the store branch with dulwich's low-level client.

Any location dulwich speaks works: a local path or bare repository, ``file://``,
``git://``, ssh (through the system ``ssh`` or ``core.sshCommand``) and http(s).
A remote *name* resolves through the repository's git config
(``remote.<name>.url``); a URL or a path is accepted as it is.

Only the store branch moves. ``fetch`` asks for that one ref (negotiating with
the store heads only, never the user's branches) and returns the remote's
commit id; the caller records it in ``refs/remotes/<name>/<branch>`` once it
has checked that the commit really is a beadsmail store. ``push`` sends the
objects the remote lacks (counting only the remote's store commit as
common) and moves the remote ref from the exact commit it was merged with;
if the remote moved meanwhile it raises ``Diverged`` and the caller fetches
and merges again. Porcelain push/pull/fetch are never used: they run a
foreground gc past a few thousand loose objects.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dulwich.client import SubprocessGitClient, get_transport_and_path
from dulwich.config import ConfigFile, StackedConfig
from dulwich.errors import NotGitRepository
from dulwich.file import FileLocked
from dulwich.objects import ZERO_SHA
from dulwich.refs import DiskRefsContainer
from dulwich.repo import Repo

from beadsmail.errors import InvalidInput, RemoteError, StoreError

STALE_LOCK_AGE = 1.0


class Diverged(Exception):
    """The remote's store ref is not the commit we merged with: fetch and merge again."""


@dataclass(frozen=True)
class Remote:
    """Where to sync: a configured remote's name (None for a bare URL) and its URL."""

    name: str | None
    url: str

    @property
    def label(self) -> str:
        return f"'{self.name}' ({self.url})" if self.name else self.url


def _config(common: Path) -> ConfigFile | None:
    try:
        return ConfigFile.from_path(str(common / "config"))
    except FileNotFoundError:
        return None


def configured_url(common: Path, name: str) -> str | None:
    """``remote.<name>.url`` from the repository's git config, or None."""
    config = _config(common)
    if config is None:
        return None
    try:
        return config.get((b"remote", name.encode()), b"url").decode()
    except KeyError:
        return None


def resolve(common: Path, base: Path | None, token: str) -> Remote:
    """A remote from a configured name, a URL or a path (relative to ``base``)."""
    url = configured_url(common, token) if "/" not in token and ":" not in token else None
    if url is not None:
        name: str | None = token
    elif "://" in token or _scp_like(token):
        name, url = None, token
    else:
        path = Path(token)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.exists():
            raise InvalidInput(
                f"no remote named {token!r} in this repository's git config and no repository "
                f"at that path; add one with 'git remote add {token} URL' or pass a URL")
        name, url = None, str(path.resolve())
    if name is not None and "://" not in url and not _scp_like(url) and not os.path.isabs(url):
        url = str(((base or common) / url).resolve())
    return Remote(name, url)


def _scp_like(url: str) -> bool:
    head, sep, _ = url.partition(":")
    return bool(sep) and "/" not in head and len(head) > 1


def local_common(url: str) -> Path | None:
    """The common git dir of a remote on this machine (path or file://), else None."""
    path = url[len("file://"):] if url.startswith("file://") else url
    if "://" in path or _scp_like(path):
        return None
    p = Path(path)
    if (p / ".git").is_dir():
        p = p / ".git"
    elif (p / ".git").is_file():
        return None  # a linked worktree as a remote: let dulwich resolve it
    if (p / "HEAD").is_file() and (p / "objects").is_dir():
        common_file = p / "commondir"
        return (p / common_file.read_text().strip()).resolve() if common_file.is_file() else p
    return None


def _client(common: Path, url: str, operation: str, ssh_command: str | None):
    local = url.removeprefix("file://")
    if "://" not in local and not _scp_like(local) and shutil.which("git"):
        # dulwich's client over ``git upload-pack``/``receive-pack``: packs keep their deltas
        # (the in-process local client inflates and recompresses every object) and the
        # remote's hooks run, as they would for any other transport
        return SubprocessGitClient(thin_packs=True, quiet=True), local
    stack = StackedConfig(StackedConfig.default_backends())
    own = _config(common)
    if own is not None:
        stack.backends.insert(0, own)
        stack.writable = own
    try:
        return get_transport_and_path(url, config=stack, operation=operation,
                                      ssh_command=ssh_command or None, quiet=True)
    except Exception as exc:  # noqa: BLE001 - dulwich raises many kinds for a bad URL
        raise InvalidInput(f"cannot use {url!r} as a git remote ({_reason(exc)}); "
                           "give a path, file://, git://, ssh:// or http(s):// URL") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NotGitRepository):
        return "not a git repository"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip() or exc.__class__.__name__
    if isinstance(text, bytes):  # pragma: no cover - dulwich messages may be bytes
        text = text.decode("utf-8", "replace")
    return " ".join(text.split())[:300]


class Transport:
    """Fetch into and push from one repository (its common git dir)."""

    def __init__(self, common: Path, ref: str, ssh_command: str | None = None) -> None:
        self.common = common
        self.ref = ref.encode()
        self.ssh_command = ssh_command
        self.repo = Repo(str(common))

    def close(self) -> None:
        self.repo.close()

    def fetch(self, remote: Remote, local_heads: list[str]) -> str | None:
        """Bring the remote's store commit and its history here; return its id (None: no branch)."""
        client, path = _client(self.common, remote.url, "pull", self.ssh_command)
        store = self.repo.object_store
        seen: dict[str, bytes | None] = {}

        def wants(refs, depth=None):  # noqa: ARG001 - dulwich's signature
            sha = refs.get(self.ref)
            seen["sha"] = sha
            return [sha] if sha and sha != ZERO_SHA and sha not in store else []

        walker = self.repo.get_graph_walker(heads=[h.encode() for h in local_heads])
        try:
            with _fetch_lock(self.common):
                result = client.fetch(path, _Target(self.repo, walker), determine_wants=wants,
                                      ref_prefix=[self.ref])
        except Exception as exc:  # noqa: BLE001 - transport errors come in many kinds
            raise RemoteError(f"cannot fetch from {remote.label}: {_reason(exc)}; check that "
                              "the remote exists and is reachable") from None
        sha = seen.get("sha", (result.refs or {}).get(self.ref))
        return sha.decode() if sha and sha != ZERO_SHA else None

    def has_store_ref(self, remote: Remote) -> bool:
        """Whether the remote has the store ref (its ref list only: nothing is written here)."""
        client, path = _client(self.common, remote.url, "pull", self.ssh_command)
        try:
            refs = client.get_refs(path.encode() if isinstance(path, str) else path)
        except Exception as exc:  # noqa: BLE001 - transport errors come in many kinds
            raise RemoteError(f"cannot list the refs of {remote.label}: {_reason(exc)}; check "
                              "that the remote exists and is reachable") from None
        refs = getattr(refs, "refs", refs)  # a result object in newer dulwich, a dict before
        return refs.get(self.ref) not in (None, ZERO_SHA)

    def push(self, remote: Remote, new: str, expected: str | None) -> None:
        """Move the remote's store ref from ``expected`` to ``new`` (raise Diverged if it moved)."""
        client, path = _client(self.common, remote.url, "push", self.ssh_command)
        new_b, old_b = new.encode(), expected.encode() if expected else None
        moved: dict[str, bytes | None] = {}

        def update_refs(refs):
            current = refs.get(self.ref)
            if current == ZERO_SHA:
                current = None
            if current != old_b:
                moved["to"] = current
                raise Diverged(current)
            return {self.ref: new_b}

        def pack_data(have, want, *, ofs_delta=False, progress=None):
            common = {old_b} if old_b and old_b in have else set()
            return self.repo.object_store.generate_pack_data(
                common, set(want), progress=progress, ofs_delta=ofs_delta)

        try:
            result = client.send_pack(path.encode() if isinstance(path, str) else path,
                                      update_refs, generate_pack_data=pack_data)
        except Diverged:
            raise
        except Exception as exc:  # noqa: BLE001 - transport errors come in many kinds
            if "moved" in moved:
                raise Diverged(moved["to"]) from None
            raise RemoteError(f"push to {remote.label} failed: {_reason(exc)}; the local "
                              "store is unchanged, run 'bd sync' again later") from None
        status = (result.ref_status or {}).get(self.ref)
        if status:
            raise Refused(_locked(remote, self.ref.decode()) or " ".join(str(status).split()))


def _locked(remote: Remote, ref: str) -> str | None:
    """Why a push to a remote on this machine failed, when it is a lock file left behind."""
    common = local_common(remote.url)
    lock = common / (ref + ".lock") if common is not None else None
    if lock is None or not lock.exists():
        return None
    return (f"its {ref} is locked by {lock}, left by a git process that was killed; if no "
            "push to it is running, remove that file")


class Refused(Exception):
    """The remote rejected the ref update (a hook, a permission, or it moved meanwhile)."""


class _Target:
    """The fetch target: our repository, negotiating with the store heads only."""

    def __init__(self, repo: Repo, walker) -> None:
        self._repo = repo
        self._walker = walker

    def get_graph_walker(self, heads=None):  # noqa: ARG002 - dulwich's signature
        return self._walker

    def __getattr__(self, name: str):
        return getattr(self._repo, name)


@contextmanager
def _fetch_lock(common: Path) -> Iterator[None]:
    """One fetch at a time; pack lock files left by a fetch that was killed are removed.

    Only dulwich names pack files ``*.lock`` while writing them (git uses ``tmp_*``),
    and every beadsmail fetch holds this lock, so with it held they are stale: left
    behind, they would make the next fetch of the same pack fail.
    """
    state = common / "beadsmail"
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in (common / "objects" / "pack").glob("pack-*.lock"):
            stale.unlink(missing_ok=True)
        yield


def break_stale_lock(common: Path, ref: str, max_age: float = STALE_LOCK_AGE) -> None:
    """Remove ``<ref>.lock`` once older than ``max_age`` (a killed process leaves it behind).

    Callers hold the store lock, so no beadsmail process is moving the ref; a git
    command holds such a lock for milliseconds.
    """
    lock = common / (ref + ".lock")
    try:
        if time.time() - lock.stat().st_mtime > max_age:
            lock.unlink()
    except FileNotFoundError:
        pass


def set_tracking(common: Path, tracking: str, sha: str) -> None:
    """Point ``refs/remotes/<name>/<branch>`` at what the remote holds (as ``git fetch`` would).

    Call under the store lock."""
    refs = DiskRefsContainer(str(common))
    name = tracking.encode()
    for attempt in range(100):
        try:
            if refs.set_if_equals(name, None, sha.encode()):
                return
        except FileLocked:
            break_stale_lock(common, tracking)
        time.sleep(0.005 * min(attempt + 1, 10))
    raise StoreError(f"could not update {tracking}: its lock file stays held; "
                     "is a git command running?")
