"""Transport for sync: fetch and push the store branch with dulwich's low-level client.

Any location dulwich speaks works: a local path or bare repository, ``file://``,
``git://``, ssh (through the system ``ssh`` or ``core.sshCommand``) and http(s).
A remote *name* resolves through the repository's git config
(``remote.<name>.url``); a URL or a path is accepted as it is.

Only store refs move: the store branch and its feeds
(``<branch>.feeds/<replica>``). ``fetch`` asks for those whose commit moved
since the last fetch (negotiating with the store heads only, never the user's
branches) and returns every store ref the remote holds; the caller records them
in ``refs/remotes/<name>/`` once it has checked each is a beadsmail store.
``push`` sends the objects the remote lacks (counting only the remote's old
commits of the pushed refs as common) and moves each ref from the exact commit
it expects; if one moved meanwhile it raises ``Diverged`` and the caller
fetches and merges again, unless that ref is pushed only on a best-effort
basis (the old-layout branch), which is then left out with a warning.
Porcelain push/pull/fetch are never used: they run a
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
from beadsmail.store import FEEDS, is_feed_name

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
        self.received = 0  # pack bytes fetched

    def close(self) -> None:
        self.repo.close()

    def fetch(self, remote: Remote, local_heads: list[str],
              known: dict[str, str] | None = None) -> dict[str, str]:
        """Bring the remote's store refs (the store branch and its feeds) here; return them.

        Only refs whose commit differs from ``known`` (what we hold of them) and is not
        here yet are asked for; the rest costs one line of the ref advertisement each.
        ``self.received`` counts the pack bytes that came."""
        client, path = _client(self.common, remote.url, "pull", self.ssh_command)
        store = self.repo.object_store
        known = known or {}
        seen: dict[str, str] = {}

        def wants(refs, depth=None):  # noqa: ARG001 - dulwich's signature
            for name, sha in refs.items():
                if sha and sha != ZERO_SHA and self.wanted(name):
                    seen[name.decode()] = sha.decode()
            return sorted({sha.encode() for name, sha in seen.items()
                           if known.get(name) != sha and sha.encode() not in store})

        walker = self.repo.get_graph_walker(heads=[h.encode() for h in local_heads])
        target = _Target(self.repo, walker)
        try:
            with _fetch_lock(self.common):
                client.fetch(path, target, determine_wants=wants, ref_prefix=[self.ref])
        except Exception as exc:  # noqa: BLE001 - transport errors come in many kinds
            raise RemoteError(f"cannot fetch from {remote.label}: {_reason(exc)}; check that "
                              "the remote exists and is reachable") from None
        self.received += target.received
        return seen

    def has_store_ref(self, remote: Remote) -> bool:
        """Whether the remote has the store branch or a feed of it (its ref list only:
        nothing is written here)."""
        client, path = _client(self.common, remote.url, "pull", self.ssh_command)
        try:
            refs = client.get_refs(path.encode() if isinstance(path, str) else path)
        except Exception as exc:  # noqa: BLE001 - transport errors come in many kinds
            raise RemoteError(f"cannot list the refs of {remote.label}: {_reason(exc)}; check "
                              "that the remote exists and is reachable") from None
        refs = getattr(refs, "refs", refs)  # a result object in newer dulwich, a dict before
        return any(self.wanted(name) and sha not in (None, ZERO_SHA) for name, sha in refs.items())

    def wanted(self, name: bytes) -> bool:
        """The store branch itself, or one of its feeds."""
        if name == self.ref:
            return True
        head, _, replica = name.rpartition(b"/")
        return head == self.ref + FEEDS.encode() and is_feed_name(replica.decode("ascii", "replace"))

    def push(self, remote: Remote, updates: dict[str, tuple[str | None, str | None]],
             best_effort: frozenset[str] = frozenset()) -> list[str]:
        """Move remote refs, each ``ref: (expected, new)`` (new None deletes it).

        A ref in ``best_effort`` that moved, or that the remote refused, is left
        out and named in the returned warnings; any other raises ``Diverged``
        (it moved: fetch and merge again) or ``Refused``."""
        client, path = _client(self.common, remote.url, "push", self.ssh_command)
        moved: dict[str, bytes | None] = {}
        skipped: list[str] = []
        sent: dict[bytes, bytes] = {}

        def update_refs(refs):
            for ref, (old, new) in updates.items():
                current = refs.get(ref.encode())
                current = None if current == ZERO_SHA else current
                if current != (old.encode() if old else None):
                    if ref in best_effort:
                        skipped.append(ref)
                        continue
                    moved["to"] = current
                    raise Diverged(current)
                sent[ref.encode()] = new.encode() if new else ZERO_SHA
            return dict(sent)

        def pack_data(have, want, *, ofs_delta=False, progress=None):
            olds = {old.encode() for old, _ in updates.values() if old}
            common = {sha for sha in have if sha in olds}  # (never the user's branches)
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
        return self._statuses(remote, result.ref_status or {}, sent, best_effort, skipped)

    def _statuses(self, remote: Remote, status: dict, sent: dict, best_effort: frozenset[str],
                  skipped: list[str]) -> list[str]:
        warnings = [f"warning: {ref} moved on {remote.label} meanwhile; not pushed this time"
                    for ref in skipped]
        for name in sent:
            why = status.get(name)
            if not why:
                continue
            ref = name.decode()
            reason = _locked(remote, ref) or " ".join(str(why).split())
            if ref not in best_effort:
                raise Refused(reason)
            warnings.append(f"warning: {remote.label} refused {ref} ({reason}); not pushed")
        return warnings


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
        self.received = 0
        self.object_store = _CountingStore(repo.object_store, self)

    def get_graph_walker(self, heads=None):  # noqa: ARG002 - dulwich's signature
        return self._walker

    def __getattr__(self, name: str):
        return getattr(self._repo, name)


class _CountingStore:
    """The object store, counting the pack bytes a fetch writes into it."""

    def __init__(self, store, target: _Target) -> None:
        self._store = store
        self._target = target

    def add_thin_pack(self, read_all, read_some, progress=None):
        def counted(n):
            data = read_all(n)
            self._target.received += len(data)
            return data

        return self._store.add_thin_pack(counted, read_some, progress=progress)

    def add_pack(self):
        f, commit, abort = self._store.add_pack()
        target = self._target

        class _Counted:
            def write(self, data):
                target.received += len(data)
                return f.write(data)

            def __getattr__(self, name):
                return getattr(f, name)

        return _Counted(), commit, abort

    def __getattr__(self, name: str):
        return getattr(self._store, name)


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


def remove_tracking(common: Path, tracking: str, sha: str) -> None:
    """Drop a tracking ref whose remote ref is gone, if it still points at ``sha``.

    Call under the store lock."""
    refs = DiskRefsContainer(str(common))
    try:
        refs.remove_if_equals(tracking.encode(), sha.encode())
    except FileLocked:
        pass  # (a git command is updating it: the next sync tries again)
