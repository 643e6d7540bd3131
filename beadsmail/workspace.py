"""The store as every domain module sees it: locate, refresh the index, write.

``Workspace.open()`` finds the repository (any worktree or subdirectory), its
settings and the index. ``refresh()`` brings the index up to date with the store
ref and its remote-tracking copies: when the commit ids match what the index has
folded (the common case) it costs two small file reads and one query, and
dulwich is never imported; otherwise it diffs the trees and parses only the
bytes appended to each segment since the last fold.

``write()`` is the only way records enter the store. Under one exclusive lock in
the common git dir it refreshes, stamps the records with the next Lamport clock,
appends them to this replica's segment, commits, moves the ref and folds them
into the index. Hooks run after the lock is released (see ``hooks``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from beadsmail import config as config_mod
from beadsmail import records as rec
from beadsmail.errors import InvalidInput, StoreError
from beadsmail.index import Index
from beadsmail.index.build import gc_paused as _gc_paused
from beadsmail.locks import store_lock
from beadsmail.store import Location, branch_ref, locate, replica_id, store_heads

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    from typing import Any

TAIL_BYTES = 64
POLICY_KEY = "security.signatures"  # (kept with the folded heads; see _folding_heads)


class Written:
    """What a write stored: the records, the commit, and warnings for stderr."""

    __slots__ = ("records", "commit", "warnings")

    def __init__(self, records: list[dict], commit: str, warnings: list[str] | None = None) -> None:
        self.records, self.commit, self.warnings = records, commit, warnings if warnings else []


def _tail(content: bytes, size: int) -> str:
    """Fingerprint of the last bytes folded, to tell an append from a rewrite."""
    import hashlib

    return hashlib.sha1(content[max(0, size - TAIL_BYTES):size]).hexdigest()


class Workspace:
    def __init__(self, loc: Location, settings: dict[str, Any],
                 notices: list[str] | None = None) -> None:
        self.loc = loc
        self.config = settings
        self.notices = notices if notices is not None else []  # for stderr: unapproved settings
        self.ref = branch_ref(settings["store"]["branch"])
        self.prefix = settings["store"]["id_prefix"]
        if not rec.PREFIX_RE.match(self.prefix):
            raise InvalidInput(f"store.id_prefix {self.prefix!r} must be 1-8 lowercase letters "
                               "or digits followed by '-', like 'bd-'")
        self._index: Index | None = None
        self._writer = None
        self._reader = None  # signing.reader.Reader, while a fold verifies segments
        self._refold = False  # (a fork was found: see signing.reader.Reader.refold)
        self._held = None  # (local head, its segments): see ``_strangers``
        self._no_split = False  # (a split build's halves did not join: see buildparts)
        self.via: str | None = None  # 'serve': bd serve writes for its agents (records say so)
        from beadsmail.signing import policy_of, use_policy

        self.policy = policy_of(settings)
        use_policy(self.policy)
        self._limits = None

    @classmethod
    def open(cls, start: str | os.PathLike[str] | None = None) -> Workspace:
        loc = locate(start)
        cache = loc.state_dir if loc.state_dir.is_dir() else None
        notices: list[str] = []
        return cls(loc, config_mod.load(loc.worktree, cache, notices), notices)

    # -- parts ---------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.loc.state_dir / "index.sqlite3"

    @property
    def index(self) -> Index:
        if self._index is None:
            self.loc.state_dir.mkdir(parents=True, exist_ok=True)
            self._index = Index(self.index_path)
        return self._index

    @property
    def writer(self):  # -> store.writer.Writer (imported lazily: dulwich is slow to import)
        if self._writer is None:
            from beadsmail.store.writer import Writer

            self._writer = Writer(self.loc.common, self.ref, bool(self.config["store"]["fsync"]))
        return self._writer

    @property
    def signer(self):  # -> signing.writer.Signer: this replica's key and feed position
        from beadsmail.signing.writer import Signer

        if getattr(self, "_signer", None) is None:
            self._signer = Signer(self)
        return self._signer

    @property
    def limits(self):  # -> boundary.Limits
        if self._limits is None:
            from beadsmail.boundary import Limits

            self._limits = Limits.of(self.config)
        return self._limits

    @property
    def replica(self) -> str:
        rid = replica_id(self.loc)
        assert rid is not None
        return rid

    def hook_runner(self):  # -> hooks.Runner: one per command, sharing its time budget
        from beadsmail import hooks

        settings = self.config["hooks"]
        budget = settings.get("budget")
        return hooks.Runner(self.loc.state_dir, float(settings["timeout"]),
                            None if budget is None else float(budget))

    def heads(self) -> dict[str, str]:
        return store_heads(self.loc.common, self.ref)

    def _folding_heads(self) -> dict[str, str]:
        """The store heads and the signature policy they are folded under: a change of
        ``security.signatures`` folds everything again."""
        return {**self.heads(), POLICY_KEY: self.policy}

    @property
    def reader(self):  # -> signing.reader.Reader: the verification step of this fold
        if self._reader is None:
            from beadsmail.signing.reader import Reader

            index = self.index
            self._reader = Reader(index, self.loc.state_dir, self.policy)
        return self._reader

    def _close_reader(self, save: bool = True) -> None:
        """Store what the fold's verification found (not after a fold that was undone)."""
        if self._reader is not None:
            if save:
                self._reader.close()
                self._refold = self._reader.refold
            self._reader = None

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    # -- reading -------------------------------------------------------------

    def refresh(self) -> int:
        """Fold whatever the store heads hold that the index has not seen; return how many
        records were new. An empty index (a first fold, after a schema change) is built
        whole (``Index.building``)."""
        heads = self._folding_heads()
        index = self.index
        folded = index.heads()
        if heads == folded:
            return 0
        if not folded or folded.get(POLICY_KEY) != self.policy:
            built = self._build(heads, force=bool(folded))
            if built is not None:
                return built
        from beadsmail.index.copies import Reorder

        try:
            with index.transaction():  # (or another process built it meanwhile)
                folded = index.heads()
                if heads == folded:
                    return 0
                new = self._fold_heads(folded, heads)
                index.set_heads(heads)
        except Reorder:  # a copy the rule prefers to one folded: fold everything anew
            self._close_reader(save=False)
            return self.rebuild_index()
        if self._refold:
            self._refold = False
            return self._build(heads, force=True) or 0
        index.upkeep()
        return len(new)

    def rebuild_index(self) -> int:
        """Build the index anew from the store (``bd index rebuild``); readers keep the old
        one until the new one is complete."""
        heads = self._folding_heads()
        built = self._build(heads, force=True)
        assert built is not None
        return built

    def _build(self, heads: dict[str, str], force: bool = False) -> int | None:
        with self.index.building(force) as building:
            if not building:
                return None
            with _gc_paused():
                from beadsmail import buildparts

                count = self.index.load(buildparts.sources(self, heads, rec.fast_parser()))
            self._close_reader()
            self.index.set_heads(heads)
        if self._refold:  # a fork: build once more, refusing both of its branches
            self._refold = False
            return self._build(heads, force=True)
        return count

    def _changes(self, folded: dict[str, str], heads: dict[str, str]) -> list[tuple[str, str | None, str]]:
        """Each head with the commit the index folded of it, if any (a remote ref that is
        new to the index is diffed against the local ref: they share most segments)."""
        base = folded.get(self.ref)
        return [(ref, folded.get(ref, base), sha) for ref, sha in sorted(heads.items())
                if ref != POLICY_KEY]

    def _segments(self, ref: str, old: str | None, sha: str
                  ) -> list[tuple[str, str, tuple[str, str]]]:
        """The segments (path, blob, (ref, commit)) that differ between two commits of a store ref; what
        the boundary refuses on the way (tree shape) goes to the index at once."""
        from beadsmail import boundary

        try:
            found = boundary.walk(self.writer, old.encode() if old else None, sha.encode(),
                                  self.limits)
        except KeyError as exc:
            raise StoreError(f"store object missing ({exc}); run 'bd doctor'") from None
        for rejection in found.rejected + self._strangers(ref, found.segments):
            self.index.add_rejection(rejection.at(ref, sha))
        return [(path, blob.decode(), (ref, sha)) for path, blob in found.segments]

    def _strangers(self, ref: str, segments: list[tuple[str, bytes]]) -> list:
        """Segments another head adds that its local ref lacks and the merge refuses too:
        files in this clone's own replica directory (it never wrote them), and segments
        sorting before the newest the local ref holds of their replica (``feedorder``).
        Taken out of ``segments``; returned as rejections."""
        if ref == self.ref or not segments:
            return []
        from beadsmail import boundary, feedorder

        head = self.writer.head()
        if self._held is None or self._held[0] != head:  # (once per fold of many heads)
            self._held = (head, boundary.segments(self.writer, head, self.limits))
        held = self._held[1]
        own = replica_id(self.loc, create=False)
        new = [path for path, _ in segments if path not in held]
        mine = [path for path in new if own is not None and path.startswith(own + "/")]
        early = [p for p in feedorder.early_segments(held, new) if p not in mine]
        segments[:] = [(path, blob) for path, blob in segments if path not in mine + early]
        return [boundary.Rejection(path, 0, "a file this clone never wrote, in its own replica "
                                   "directory; not read") for path in mine] + \
            [boundary.Rejection(path, 0, feedorder.EARLY) for path in early]

    def _fold_heads(self, folded: dict[str, str], heads: dict[str, str]) -> list[dict]:
        items: list[tuple[dict, str, str, int]] = []
        with _gc_paused():
            for ref, old, sha in self._changes(folded, heads):
                for path, blob, where in self._segments(ref, old, sha):
                    items += self._read_segment(path, blob, where, rec.parse_line)
            new = self.index.ingest(items)
            self._close_reader()
            return new

    def _read_segment(self, path: str, blob: str, where: tuple[str, str],
                      parse: Callable[[bytes], dict]) -> list[tuple[dict, str, str, int]]:
        """Parse a segment's lines not yet folded (all of it if it was rewritten) through
        the boundary: the records with their text, path and line; what the boundary
        refuses goes to the index at once."""
        from beadsmail import boundary

        index = self.index
        known = index.segment(path)
        if known and known[0] == blob:
            return []
        content = boundary.read_blob(self.writer, path, blob.encode(), self.limits)
        if isinstance(content, boundary.Rejection):  # reported; every other segment stays readable
            index.add_rejection(content.at(*where))
            return []
        start, line_no = 0, 0
        if known and len(content) >= known[1] and _tail(content, known[1]) == known[3]:
            start, line_no = known[1], known[2]
        parsed, rejected, consumed, line_no = boundary.lines(content, start, line_no,
                                                             self.limits, parse, path)
        for rejection in rejected:
            index.add_rejection(rejection.at(*where))
        items = self.reader.segment(path, parsed, where[0]) if parsed else []  # (signatures)
        index.set_segment(path, blob, consumed, line_no, _tail(content, consumed))
        return items

    # -- writing -------------------------------------------------------------

    def lock(self):
        """The one store lock (see ``locks.store_lock``)."""
        return store_lock(self.loc.state_dir, self.config["store"]["lock_timeout"])

    def write(self, actor: str, items: list[tuple[str, dict]], message: str,
              check=None) -> Written:
        """Store records ``(kind, fields)`` as one commit.

        ``check(index)`` runs under the lock after the refresh, before anything is
        written (optimistic-locking and permission checks); it may raise.
        """
        rec.check_identity(actor)
        with self.lock():
            self.refresh()
            index = self.index
            if check is not None:
                check(index)
            if self.policy != "off":
                self.signer.may_write(actor)  # (not as an identity bound to other clones)
            from beadsmail import groups

            groups.stamp(index, items)  # every message carries its sender's group
            # the next Lamport clock, from records that passed the boundary (|clock| <=
            # 2^53-1); a peer that pushed the largest one makes clocks saturate there,
            # and (clock, id) still orders every record the same way on every clone
            from beadsmail.boundary import MAX_INT

            clock = min(index.max_clock() + 1, MAX_INT)
            replica = self.replica
            via = {"via": self.via} if self.via else {}
            records = [rec.make(kind, actor, clock, replica, self.prefix, **fields, **via)
                       for kind, fields in items]
            signer = self.signer
            stored, lines = signer.seal(records, lambda f: rec.make("key", actor, clock, replica,
                                                                    self.prefix, **f))
            day = datetime.now(UTC).strftime("%Y-%m-%d")
            old_head = self.writer.head()
            commit, path = self.writer.append(replica, lines, message, actor, day,
                                              int(self.config["store"]["segment_bytes"]))
            signer.written(lines, commit)
            warnings = self._fold_written(old_head, commit, path, stored, lines)
        self.index.upkeep()  # (after the lock: a checkpoint never holds up other writers)
        try:
            self.writer.maybe_pack(int(self.config["store"]["pack_after"]))
        except OSError as exc:
            warnings.append(f"warning: could not start background packing: {exc}")
        if self.config["sync"].get("auto"):  # detached: the write never waits for the network
            from beadsmail.sync import start_background

            warnings += start_background(self)
        return Written(records, commit.decode(), warnings)

    def _fold_written(self, old_head: bytes | None, commit: bytes, path: str,
                      records: list[dict], lines: list[bytes]) -> list[str]:
        """Fold a write into the index. The records are committed already, so an index
        that cannot be written (a full disk) is a warning, never an error: the next
        command folds them from the store."""
        import sqlite3

        from beadsmail.index.copies import Reorder

        index = self.index
        try:
            try:
                with index.transaction():
                    if old_head is None or index.heads().get(self.ref) == old_head.decode():
                        self._fold_own(commit, path, records, lines)
                    else:  # someone outside beadsmail moved the ref: fold the long way
                        self._fold_heads(index.heads(), self._folding_heads())
                        index.set_heads(self._folding_heads())
            except Reorder:  # (see refresh)
                self._close_reader(save=False)
                self.rebuild_index()
        except (sqlite3.Error, OSError) as exc:
            return [f"warning: stored in commit {commit.decode()[:12]}, but the index could not "
                    f"be updated ({exc}); the next command catches up"]
        return []

    def _fold_own(self, commit: bytes, path: str, records: list[dict], lines: list[bytes]
                  ) -> None:
        index = self.index
        known = index.segment(path)
        size, count = (known[1], known[2]) if known else (0, 0)
        data = b"".join(line + b"\n" for line in lines)
        blob = self.writer.appended
        content_tail = (self._prefix_tail(known, data) if known else
                        _tail(data, len(data)))
        index.set_segment(path, blob.decode(), size + len(data), count + len(lines), content_tail)
        index.ingest((r, line.decode(), path, count + i + 1)
                     for i, (r, line) in enumerate(zip(records, lines, strict=True))
                     if r["kind"] != "key")  # (feed metadata: see signing.reader)
        self.signer.folded(index.conn, records[-1]["actor"])
        heads = index.heads()
        heads[self.ref] = commit.decode()
        index.set_heads(heads)

    def _prefix_tail(self, known, data: bytes) -> str:
        if len(data) >= TAIL_BYTES:
            return _tail(data, len(data))
        from beadsmail import boundary

        blob = boundary.read_blob(self.writer, "", known[0].encode(), self.limits)
        if isinstance(blob, boundary.Rejection):
            raise StoreError(blob.why)
        return _tail(blob + data, len(blob) + len(data))
