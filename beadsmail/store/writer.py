"""Writing and reading the store branch with dulwich (the only module besides ``remote``).

A write appends canonical JSONL lines to this replica's newest segment under
``.beads/log/<replica>/``, writes the new blob and the few trees above it
straight into the object store, makes a commit whose parent is the current head,
and moves the ref by compare-and-swap. No working tree, git index, HEAD or user
branch is read or touched. Callers hold the store lock (see ``workspace``), so
the compare-and-swap fails only if something outside beadsmail moved the ref;
the append is then redone on the new head.

Segments roll to ``<date>-<n+1>.jsonl`` once a line would take them past
``segment_bytes``. Loose objects are packed (with deltas) by a detached
``git repack`` once a sample of the object directory says there are more than
``pack_after`` of them, so a writer never waits for packing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dulwich.file import FileLocked
from dulwich.object_store import DiskObjectStore
from dulwich.objects import Blob, Commit, Tree
from dulwich.refs import DiskRefsContainer

from beadsmail.boundary import REGULAR_MODES, SEGMENT_RE
from beadsmail.errors import StoreError
from beadsmail.store import objects

MARKER_PATH = b"store.json"
MARKER = b'{"format":"beadsmail","v":1}\n'
TREE_MODE = 0o040000
BLOB_MODE = 0o100644
STALE_LOCK_AGE = 1.0  # seconds; see Writer._break_stale_ref_lock


class Writer:
    def __init__(self, common: Path, ref: str, fsync: bool = False) -> None:
        self.common = common
        self.ref = ref.encode()
        self.fsync = fsync
        self.objects = DiskObjectStore(
            str(common / "objects"), loose_compression_level=1, fsync_object_files=fsync
        )
        self.refs = DiskRefsContainer(str(common))

    # -- reading -------------------------------------------------------------

    def head(self) -> bytes | None:
        try:
            return self.refs[self.ref]
        except KeyError:
            return None

    def commit(self, sha: bytes) -> Commit:
        obj = self._get(sha)
        if not isinstance(obj, Commit):
            raise StoreError(f"object {sha.decode()} is not a commit")
        return obj

    def tree(self, sha: bytes) -> Tree:
        obj = self._get(sha)
        if not isinstance(obj, Tree):
            raise StoreError(f"object {sha.decode()} is not a tree")
        return obj

    def blob(self, sha: bytes) -> bytes:
        return self._get(sha).as_raw_string()

    def _get(self, sha: bytes):
        try:
            return self.objects[sha]
        except KeyError:
            # A background 'git repack -d' may have packed the object and pruned its
            # loose copy between dulwich's look in the packs it knows and its look at
            # the loose objects: look again with a fresh list of packs, as git does.
            self._reopen_objects()
            return self.objects[sha]

    def _reopen_objects(self) -> None:
        self.objects.close()
        self.objects = DiskObjectStore(str(self.common / "objects"), loose_compression_level=1,
                                       fsync_object_files=self.fsync)

    def _sub(self, tree: Tree | None, name: bytes) -> Tree | None:
        if tree is None or name not in tree:
            return None
        mode, sha = tree[name]
        return self.tree(sha) if mode == TREE_MODE else None

    def is_store(self, commit_sha: bytes) -> bool:
        root = self.tree(self.commit(commit_sha).tree)
        beads = self._sub(root, b".beads")
        return beads is not None and MARKER_PATH in beads

    # -- raw reads for the trust boundary (``beadsmail.boundary`` interprets them) --

    def object_size(self, sha: bytes) -> int | None | str:
        """An object's size from its header (None: missing; a string: unreadable)."""
        size = objects.object_size(self.objects, self.common, sha)
        if size is None:
            self._reopen_objects()  # see _get
            size = objects.object_size(self.objects, self.common, sha)
        return size

    def entries(self, tree: bytes, limit: int) -> list[tuple[bytes, int, bytes]] | str:
        """A tree's raw entries, or why not; its size is checked before it is loaded."""
        size = self.object_size(tree)
        if isinstance(size, int) and size > limit * objects.TREE_ENTRY_BYTES:
            return f"directory object of {size} bytes; too many entries (boundary.tree_entries)"
        return objects.tree_entries(self._get, tree, limit)

    def blob_bytes(self, sha: bytes) -> bytes | str:
        return objects.blob_bytes(self._get, sha)

    def log_tree_entry(self, commit_sha: bytes, limit: int = 1000) -> tuple[int, bytes] | None:
        """(mode, id) of a commit's ``.beads/log`` entry, None if it has none."""
        tree = self.commit(commit_sha).tree
        for name in (b".beads", b"log"):
            listing = self.entries(tree, limit)
            found = [(mode, sha) for n, mode, sha in listing if n == name] \
                if not isinstance(listing, str) else []
            if not found:
                return None
            if name == b"log":
                return found[0]
            mode, tree = found[0]
            if mode != TREE_MODE:
                return None
        return None

    # -- writing -------------------------------------------------------------

    def append(self, replica: str, lines: list[bytes], message: str, author: str,
               day: str, segment_bytes: int) -> tuple[bytes, str]:
        """Append ``lines`` to this replica's segment; returns (commit id, segment path)."""
        data = b"".join(line + b"\n" for line in lines)
        for _ in range(50):
            old = self.head()
            commit, path = self._build(old, replica, data, message, author, day, segment_bytes)
            if self._move_ref(old, commit.id):
                return commit.id, path
            time.sleep(0.01)
        raise StoreError("the store ref kept moving under us; try again")

    def _build(self, old: bytes | None, replica: str, data: bytes, message: str,
               author: str, day: str, segment_bytes: int) -> tuple[Commit, str]:
        root = self.tree(self.commit(old).tree) if old else Tree()
        beads = self._sub(root, b".beads") or Tree()
        log = self._sub(beads, b"log") or Tree()
        mine = self._sub(log, replica.encode()) or Tree()
        name, content = self._segment_for(mine, day, len(data), segment_bytes)
        blob = Blob.from_string(content + data)
        mine = _copy(mine)
        mine.add(name, BLOB_MODE, blob.id)
        log = _copy(log)
        log.add(replica.encode(), TREE_MODE, mine.id)
        beads = _copy(beads)
        beads.add(b"log", TREE_MODE, log.id)
        if MARKER_PATH not in beads:
            marker = Blob.from_string(MARKER)
            self._add(marker)
            beads.add(MARKER_PATH, BLOB_MODE, marker.id)
        root = _copy(root)
        root.add(b".beads", TREE_MODE, beads.id)
        for obj in (blob, mine, log, beads, root):
            self._add(obj)
        commit = _make_commit(root.id, [old] if old else [], message, author)
        self._add(commit)
        self.appended = blob.id  # (the index records which blob it folded)
        return commit, f"{replica}/{name.decode()}"

    def _segment_for(self, mine: Tree, day: str, size: int, limit: int) -> tuple[bytes, bytes]:
        """The segment to append to: today's last, unless the append would take it past
        ``limit``. Only names of the segment form count, and an existing segment is
        loaded only when its header says it is within ``limit`` (anything else there was
        not written by this replica's writer and can never block it). Never a name that
        sorts before this replica's newest segment (a clock set back): a replica only
        appends segments with later names, and other clones refuse an earlier one."""
        newest = max((n for n, mode, _ in mine.iteritems() if SEGMENT_RE.match(n)
                      and mode in REGULAR_MODES), default=b"")[:10].decode()
        day = max(day, newest)
        today = sorted((n for n, mode, _ in mine.iteritems() if n.startswith(day.encode())
                        and SEGMENT_RE.match(n) and mode in REGULAR_MODES),
                       key=lambda n: (len(n), n))  # (numbers in order past -999)
        if not today:
            return f"{day}-000.jsonl".encode(), b""
        last = today[-1]
        stored = self.object_size(mine[last][1])
        content = self.blob_bytes(mine[last][1]) \
            if isinstance(stored, int) and (stored + size <= limit or not stored) else None
        # a last line without its newline (a hand edit, a torn copy) is left alone too,
        # so that it can never swallow the first line appended after it; a missing or
        # unreadable object is never written over: the next segment starts
        if isinstance(content, bytes) and (not content or content.endswith(b"\n")):
            return last, content
        n = int(last.decode().rsplit("-", 1)[1].split(".")[0]) + 1
        return f"{day}-{n:03d}.jsonl".encode(), b""

    def _add(self, obj: object) -> None:
        for attempt in range(60):
            try:
                self._write_loose(obj)
                return
            except FileNotFoundError:
                # a background repack's prune-packed removed the empty fan-out
                # directory between the mkdir and the write: just write again
                time.sleep(0.001)
            except FileExistsError:  # another writer's lock file, or a dead writer's
                if obj.id in self.objects:  # type: ignore[attr-defined]
                    return
                if attempt >= 10:  # callers hold the store lock: a lasting one is a dead writer's
                    _break_stale(self._object_path(obj.id) + ".lock")  # type: ignore[attr-defined]
                time.sleep(0.005 * min(attempt + 1, 10))
        raise StoreError("could not write a git object (its file stayed locked)")

    def _write_loose(self, obj) -> None:
        """Write one loose object as git does: ``<sha>.lock``, then a rename. (Not dulwich's
        ``add_object``: on a full disk its lock file can be neither flushed nor removed and
        a traceback is printed when it is collected. Here the lock file always goes and the
        ``OSError`` reaches the caller once.)"""
        path = self._object_path(obj.id)
        try:
            os.utime(path, None)  # already there (fresh mtime, as dulwich does)
            return
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = memoryview(obj.as_legacy_object(compression_level=1))
        lock = path + ".lock"
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            try:
                while data:
                    data = data[os.write(fd, data):]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(lock, path)
        except BaseException:
            try:
                os.unlink(lock)
            except OSError:
                pass
            raise

    def _object_path(self, sha: bytes) -> str:
        return str(self.common / "objects" / sha[:2].decode() / sha[2:].decode())

    def _move_ref(self, old: bytes | None, new: bytes) -> bool:
        for attempt in range(100):
            try:
                if old is None:
                    return bool(self.refs.add_if_new(self.ref, new))
                return bool(self.refs.set_if_equals(self.ref, old, new))
            except FileLocked:
                self._break_stale_ref_lock()
                time.sleep(0.005 * min(attempt + 1, 10))
        raise StoreError(f"the ref lock {self.ref.decode()}.lock stays held; is a git command running?")

    def _break_stale_ref_lock(self) -> None:
        """A crashed writer leaves ``<ref>.lock`` behind; remove it once clearly stale.

        Callers hold the store lock, so no beadsmail process is moving the ref, and
        a git command holds such a lock for milliseconds: one older than
        ``STALE_LOCK_AGE`` belongs to a process that died.
        """
        _break_stale(str(self.common / (self.ref.decode() + ".lock")))

    def set_ref(self, old: bytes | None, new: bytes) -> bool:
        """Compare-and-swap the store ref (used by sync)."""
        return self._move_ref(old, new)

    def add_commit(self, tree_id: bytes, parents: list[bytes], message: str, author: str) -> bytes:
        commit = _make_commit(tree_id, parents, message, author)
        self._add(commit)
        return commit.id

    def replace_segments(self, replica: str, contents: dict[str, bytes], message: str,
                         author: str) -> bytes:
        """Rewrite some of this replica's own segments (compaction after cleanup); new commit id.

        ``contents`` maps a segment name (``2026-11-23-000.jsonl``) to its new bytes;
        empty bytes remove the segment. Only the owning replica may call this.
        """
        return self._rewrite_own(replica, [(b"log", name.encode(), data or None, False)
                                           for name, data in contents.items()], message, author)

    def quarantine(self, replica: str, name: str, kept: bytes, moved: bytes, message: str,
                   author: str) -> bytes:
        """Move lines out of one of this replica's segments into
        ``.beads/quarantine/<replica>/<name>`` (appended there), in one commit."""
        return self._rewrite_own(replica, [(b"log", name.encode(), kept, False),
                                           (b"quarantine", name.encode(), moved, True)],
                                 message, author)

    def _rewrite_own(self, replica: str, changes: list[tuple[bytes, bytes, bytes | None, bool]],
                     message: str, author: str) -> bytes:
        """One commit changing files of ``.beads/<top>/<replica>/``: ``(top, name, bytes or
        None to remove, append)`` each; returns the commit id."""
        for _ in range(50):
            old = self.head()
            if old is None:
                raise StoreError("the store is empty: nothing to rewrite")
            root = self.tree(self.commit(old).tree)
            beads = _copy(self._sub(root, b".beads") or Tree())
            for top, name, data, append in changes:
                top_tree = _copy(self._sub(beads, top) or Tree())
                mine = _copy(self._sub(top_tree, replica.encode()) or Tree())
                if data is None:
                    if name in mine:
                        del mine[name]
                else:
                    if append and name in mine:
                        data = self.blob(mine[name][1]) + data
                    blob = Blob.from_string(data)
                    self._add(blob)
                    mine.add(name, BLOB_MODE, blob.id)
                self._add(mine)
                top_tree.add(replica.encode(), TREE_MODE, mine.id)
                self._add(top_tree)
                beads.add(top, TREE_MODE, top_tree.id)
            self._add(beads)
            root = _copy(root)
            root.add(b".beads", TREE_MODE, beads.id)
            self._add(root)
            commit = _make_commit(root.id, [old], message, author)
            self._add(commit)
            if self._move_ref(old, commit.id):
                return commit.id
            time.sleep(0.01)
        raise StoreError("the store ref kept moving under us; try again")

    def has_object(self, sha: bytes) -> bool:
        if sha in self.objects:
            return True
        self._reopen_objects()  # see _get
        return sha in self.objects

    def create_store(self, message: str) -> bool:
        """Give an empty repository the store branch (only the format marker); False if it exists."""
        if self.head() is not None:
            return False
        marker = Blob.from_string(MARKER)
        beads = Tree()
        beads.add(MARKER_PATH, BLOB_MODE, marker.id)
        root = Tree()
        root.add(b".beads", TREE_MODE, beads.id)
        for obj in (marker, beads, root):
            self._add(obj)
        commit = _make_commit(root.id, [], message, "beadsmail")
        self._add(commit)
        return self._move_ref(None, commit.id) or self.head() is not None

    # -- maintenance ---------------------------------------------------------

    def maybe_pack(self, pack_after: int) -> bool:
        """Start a background repack if the estimated loose-object count exceeds ``pack_after``."""
        count = 0
        for sample in ("17", "5c", "a3", "e8"):  # 4 of 256 fan-out directories, like git's estimate
            try:
                count += len(os.listdir(self.common / "objects" / sample)) * 64
            except FileNotFoundError:
                pass
        if count <= pack_after:
            return False
        subprocess.Popen(
            [sys.executable, "-m", "beadsmail.store.pack", str(self.common)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
        return True


def _break_stale(lock: str, max_age: float | None = None) -> None:
    try:
        if time.time() - os.stat(lock).st_mtime > (STALE_LOCK_AGE if max_age is None else max_age):
            os.unlink(lock)
    except FileNotFoundError:
        pass


def _copy(tree: Tree) -> Tree:
    new = Tree()
    for name, mode, sha in tree.iteritems():
        new.add(name, mode, sha)
    return new


def _make_commit(tree_id: bytes, parents: list[bytes], message: str, author: str) -> Commit:
    commit = Commit()
    commit.tree = tree_id
    commit.parents = parents
    ident = f"{author} <{author}@beadsmail>".encode()
    commit.author = commit.committer = ident
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = message.encode("utf-8", "replace") + b"\n"
    return commit


def init_repository(path: Path) -> None:
    """Create a git repository (with the git CLI when present, so its defaults apply)."""
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(path)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    else:
        from dulwich.repo import Repo

        Repo.init(str(path))
