"""The trust boundary: every byte read from git passes here before it is used.

The local user is trusted; what arrives through git is not (a collaborator with
push access, an old buggy version, a hand edit). So nothing read from a store
commit is folded into the index, shown, merged or handed to a hook before this
module has looked at it:

- ``walk`` lists a commit's segments (``.beads/log/<replica>/<segment>``),
  checking the tree's shape on the way: only regular blobs, at names of the
  defined form (``REPLICA_RE``, ``SEGMENT_RE``), in trees of at most
  ``tree_entries`` entries. Gitlinks, symlinks, trees where blobs belong, names
  that are not UTF-8 or not of the defined form are each a ``Rejection``.
- ``read_blob`` reads a segment's size from its object header first and loads
  it only within ``blob_bytes``: a hostile 200 MB blob is never loaded.
- ``parse`` turns one line into a record: at most ``line_bytes``, valid UTF-8,
  JSON nesting at most ``depth`` (checked on the bytes *before* the parser
  recurses), every integer within ``|n| <= 2**53 - 1`` (what JSON, SQLite and
  every client hold exactly), no float that is not finite, no string that is not
  valid Unicode text, then the record's schema.

Whatever fails becomes a ``Rejection`` value (ref, commit, path, line, why),
never an exception and never a stop for the rest; the index keeps rejections
for ``bd doctor``. The store layer (``store.writer``) supplies raw tree entries,
object sizes and blob bytes; it never interprets them. ``tests/test_boundary.py``
checks that no other module reads tree entries or blob bytes for records.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from beadsmail.errors import InvalidInput

MAX_INT = 2**53 - 1
REPLICA_RE = re.compile(rb"^[0-9a-z]{12}$")  # (the records' replica pattern)
SEGMENT_RE = re.compile(rb"^[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{3,9}\.jsonl$")
TREE_MODE = 0o040000
REGULAR_MODES = (0o100644, 0o100755)
MODE_NAMES = {0o040000: "a directory", 0o120000: "a symbolic link", 0o160000: "a gitlink "
              "(submodule)", 0o100644: "a file", 0o100755: "a file"}
# Lines holding one of these may carry a large integer, a float exponent, an escaped
# surrogate: only those are walked value by value after parsing (the rest cannot fail).
_SUSPECT = re.compile(rb"[0-9]{16}|[0-9][eE]|\\u[dD][89abcdefABCDEF]|NaN|Infinity")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


class Limits:
    """Bounds on what is read from git (``boundary`` in ``.beads/config.yaml``).

    ``line_bytes``: 1 MiB holds the largest record a write makes (``mail.max_body``
    64 KiB, each byte escaped as ``\\uXXXX`` at worst, plus fields). ``depth``: 32;
    the deepest record a write makes nests a few levels. ``blob_bytes``: 16 MiB,
    16 times the size a segment rolls at (``store.segment_bytes``); folding a
    segment holds about three copies of it, so a hostile blob costs at most ~50 MB.
    ``tree_entries``: 20,000 replicas, or segments of one replica (a segment a day
    for 50 years).
    """

    __slots__ = ("line_bytes", "depth", "blob_bytes", "tree_entries")
    DEFAULTS = {"line_bytes": 1 << 20, "depth": 32, "blob_bytes": 16 << 20,
                "tree_entries": 20_000}

    def __init__(self, **given: int) -> None:
        for name in self.__slots__:
            setattr(self, name, given.get(name, self.DEFAULTS[name]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        return "Limits(" + ", ".join(f"{n}={getattr(self, n)}" for n in self.__slots__) + ")"

    @classmethod
    def of(cls, settings: dict) -> Limits:
        given = settings.get("boundary") or {}
        if not isinstance(given, dict):
            raise InvalidInput("boundary in .beads/config.yaml must be a mapping of limits")
        values = {}
        for name in cls.__slots__:
            value = given.get(name, cls.DEFAULTS[name])
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"boundary.{name} {value!r} must be a whole number >= 1")
            values[name] = value
        return cls(**values)


class Rejection:
    """One thing read from git and refused: where it sits and why."""

    __slots__ = ("path", "line", "why", "text", "ref", "commit")

    def __init__(self, path: str, line: int, why: str, text: bytes = b"",
                 ref: str | None = None, commit: str | None = None) -> None:
        # path: relative to .beads/log ('<replica>/<segment>', or the refused name);
        # line: 0 for a whole file or tree entry
        self.path, self.line, self.why, self.text = path, line, why, text
        self.ref, self.commit = ref, commit

    def __repr__(self) -> str:
        return f"Rejection({self.path!r}, {self.line}, {self.why!r})"

    def at(self, ref: str | None, commit: str | None) -> Rejection:
        return Rejection(self.path, self.line, self.why, self.text, ref, commit)


def show_name(name: bytes) -> str:
    """A refused tree entry name as text: bytes that are not UTF-8 and control characters
    escaped (``\\xff``, ``\\x1b``), so a name can never drive a terminal."""
    text = name.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256
                   else f"\\u{ord(c):04x}" for c in text)


# -- lines ----------------------------------------------------------------------------


def too_deep(raw: bytes, depth: int) -> bool:
    """Whether JSON text nests arrays/objects deeper than ``depth`` (strings skipped)."""
    if raw.count(b"[") + raw.count(b"{") <= depth:
        return False  # (the common case, decided by two counts)
    level = 0
    for chunk in _STRING.split(raw):
        for byte in chunk:
            if byte in b"[{":
                level += 1
                if level > depth:
                    return True
            elif byte in b"]}":
                level -= 1
    return False


def _bad_value(value: object, depth: int = 0) -> str | None:
    """Why a parsed value is not one a record may hold, or None."""
    kind = type(value)
    if kind is int:
        return None if -MAX_INT <= value <= MAX_INT else (  # type: ignore[operator]
            f"an integer out of range (|n| > 2^53-1): {str(value)[:30]}")
    if kind is float:
        return None if value - value == 0 else "a number that is not finite"  # type: ignore
    if kind is str:
        try:
            value.encode("utf-8")  # type: ignore[union-attr]
        except UnicodeEncodeError:
            return "a string that is not UTF-8 text (a lone surrogate escape)"
        return None
    if kind is dict:
        for key, item in value.items():  # type: ignore[union-attr]
            why = _bad_value(key) or _bad_value(item)
            if why:
                return why
    elif kind is list:
        for item in value:  # type: ignore[union-attr]
            why = _bad_value(item)
            if why:
                return why
    return None


def parse(raw: bytes, limits: Limits, validate: Callable[[bytes], dict]) -> dict | str:
    """A record from one line, or the reason it is refused.

    ``validate`` is ``records.parse_line`` (or its faster twin): it decodes, parses
    and checks the schema, raising ``InvalidInput``; it only ever sees lines within
    the size and depth bounds.
    """
    if len(raw) > limits.line_bytes:
        return f"line of {len(raw)} bytes; the limit is {limits.line_bytes} (boundary.line_bytes)"
    if too_deep(raw, limits.depth):
        return f"JSON nested deeper than {limits.depth} levels (boundary.depth)"
    try:
        record = validate(raw)
    except InvalidInput as exc:
        return exc.message
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        return f"unreadable ({exc.__class__.__name__})"
    if _SUSPECT.search(raw):
        why = _bad_value(record)
        if why:
            return f"holds {why}"
    return record


def lines(content: bytes, start: int, line_no: int, limits: Limits,
          validate: Callable[[bytes], dict], path: str
          ) -> tuple[list[tuple[dict, str, int]], list[Rejection], int, int]:
    """Parse a segment's complete lines from byte ``start`` (line ``line_no`` before it).

    Returns (records with their text and line number, rejections, bytes consumed,
    last line number): a last line without its newline is a rejection and is not
    consumed, so an append that completes it is read again.
    """
    from beadsmail.records import stored_text

    *complete, rest = content[start:].split(b"\n")
    items, rejected = [], []
    for raw in complete:
        line_no += 1
        if not raw.strip():
            continue
        result = parse(raw, limits, validate)
        if isinstance(result, str):
            rejected.append(Rejection(path, line_no, result, raw[:500]))
        else:
            items.append((result, stored_text(result, raw), line_no))
    if rest:
        rejected.append(Rejection(path, line_no + 1, "truncated line (no newline at the end)",
                                  rest[:500]))
    return items, rejected, len(content) - len(rest), line_no


def record_ids(content: bytes, limits: Limits) -> dict[str, bytes]:
    """Record id -> line for the lines of a segment that pass the boundary (merging,
    compaction): a line refused here is not a record and has no id."""
    from beadsmail.records import parse_line

    found = {}
    for raw in content.split(b"\n"):
        if raw.strip():
            result = parse(raw, limits, parse_line)
            if isinstance(result, dict):
                found.setdefault(result["id"], raw)
    return found


# -- trees and blobs --------------------------------------------------------------------


def _entry_problem(name: bytes, mode: int, want_tree: bool) -> str | None:
    pattern = REPLICA_RE if want_tree else SEGMENT_RE
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return "name is not UTF-8"
    if not pattern.match(name):
        return ("not a replica directory name (12 lowercase letters or digits)" if want_tree
                else "not a segment name (<yyyy-mm-dd>-<n>.jsonl)")
    if want_tree and mode != TREE_MODE:
        return f"{MODE_NAMES.get(mode, f'mode {mode:o}')} where a directory belongs"
    if not want_tree and mode not in REGULAR_MODES:
        return f"{MODE_NAMES.get(mode, f'mode {mode:o}')} where a file belongs"
    return None


def entries(git, tree: bytes | None, path: str, want_tree: bool, limits: Limits
            ) -> tuple[dict[bytes, bytes], list[Rejection]]:
    """The well-formed entries of one tree (name -> object id) and the refused ones."""
    if tree is None:
        return {}, []
    listing = git.entries(tree, limits.tree_entries)
    if isinstance(listing, str):
        return {}, [Rejection(path.rstrip("/") or ".", 0, listing)]
    good, rejected = {}, []
    for name, mode, sha in listing:
        why = _entry_problem(name, mode, want_tree)
        if why:
            rejected.append(Rejection(path + show_name(name), 0, why))
        else:
            good[name] = sha
    return good, rejected


def listing(git, tree: bytes | None, limits: Limits) -> dict[bytes, tuple[int, bytes]]:
    """A tree's entries as they are, name -> (mode, id), within ``tree_entries`` (for the
    merge, which keeps this clone's side as it is); an unreadable tree lists nothing."""
    found = git.entries(tree, limits.tree_entries) if tree is not None else []
    return {} if isinstance(found, str) else {n: (mode, sha) for n, mode, sha in found}


def log_tree(git, commit: bytes | None) -> tuple[bytes | None, list[Rejection]]:
    """The id of a commit's ``.beads/log`` tree (None: no records yet)."""
    if commit is None:
        return None, []
    found = git.log_tree_entry(commit)
    if found is None:
        return None, []
    mode, sha = found
    if mode != TREE_MODE:
        return None, [Rejection(".", 0, f".beads/log is {MODE_NAMES.get(mode, 'not a directory')}")]
    return sha, []


class Walk:
    """A commit's segments that differ from another commit's, and what was refused."""

    __slots__ = ("segments", "rejected")

    def __init__(self, segments: list[tuple[str, bytes]], rejected: list[Rejection]) -> None:
        self.segments, self.rejected = segments, rejected


def walk(git, old: bytes | None, new: bytes | None, limits: Limits) -> Walk:
    """Segments ``(path, blob id)`` of ``new`` that differ from ``old`` (subtrees equal
    by id are skipped); every entry of a changed tree is shape-checked."""
    out = Walk([], [])
    old_log, _ = log_tree(git, old)
    new_log, out.rejected = log_tree(git, new)
    if new_log is None or new_log == old_log:
        return out
    old_replicas, _ = entries(git, old_log, "", True, limits)
    replicas, rejected = entries(git, new_log, "", True, limits)
    out.rejected += rejected
    for name, sha in sorted(replicas.items()):
        if old_replicas.get(name) == sha:
            continue
        prefix = name.decode() + "/"
        before, _ = entries(git, old_replicas.get(name), prefix, False, limits)
        segments, rejected = entries(git, sha, prefix, False, limits)
        out.rejected += rejected
        out.segments += [(prefix + seg.decode(), blob) for seg, blob in sorted(segments.items())
                         if before.get(seg) != blob]
    return out


def blob_size(git, blob: bytes) -> int:
    """A blob's size from its header (0 when missing or unreadable)."""
    size = git.object_size(blob)
    return size if isinstance(size, int) else 0


def read_blob(git, path: str, blob: bytes, limits: Limits) -> bytes | Rejection:
    """A segment's bytes, or why not: its size is read from the object header first."""
    size = git.object_size(blob)
    if size is None:
        return Rejection(path, 0, f"object {blob.decode()} of this segment is missing from the "
                         "repository; run 'bd doctor'")
    if isinstance(size, str):
        return Rejection(path, 0, size)
    if size > limits.blob_bytes:
        return Rejection(path, 0, f"segment of {size} bytes; the limit is {limits.blob_bytes} "
                         "(boundary.blob_bytes); not read")
    content = git.blob_bytes(blob)
    if isinstance(content, str):
        return Rejection(path, 0, content)
    return content


def replica_segments(git, commit: bytes | None, replica: str, limits: Limits) -> set[str]:
    """The well-formed segment paths (``<replica>/<name>``) of one replica in a commit."""
    log, _ = log_tree(git, commit)
    replicas, _ = entries(git, log, "", True, limits)
    found, _ = entries(git, replicas.get(replica.encode()), replica + "/", False, limits)
    return {f"{replica}/{name.decode()}" for name in found}


def segments(git, commit: bytes | None, limits: Limits) -> dict[str, bytes]:
    """Every well-formed segment of a commit: ``<replica>/<name>`` -> blob id."""
    return dict(walk(git, None, commit, limits).segments)


# -- append-only ----------------------------------------------------------------------

def compaction_of(old: bytes, new: bytes, owner: str, limits: Limits,
                  sealed: Callable[[dict], bool | None] | None = None,
                  segment: str | None = None) -> list[str] | None:
    """The ids ``new`` dropped from ``old`` if ``new`` is a compaction of ``old`` by the
    segment's owner, else None: ``new`` holds a ``compaction`` record of replica
    ``owner`` (for ``segment``, when given) naming every record of ``old`` it lacks,
    every record both hold is the same bytes in both (a compaction only removes lines),
    and what it removed are ephemeral messages and receipts, which is all that cleanup
    removes. A removed line of a signed feed leaves a ``dropped`` stub with its sha256 in
    its place, so the feed's chain still verifies (``signing.feed``).

    Who may compact: ``sealed(marker)`` says whether the owner's verified feed key
    signed a marker (True, False, or None when this clone knows no key for the owner).
    In a signed feed (``old`` holds lines with a feed position, or the owner's key is
    known) only a marker its key signed counts, and it must name each removed line's
    sha256; an unsigned feed's marker counts unsigned, as before signing."""
    from beadsmail.records import parse_line

    before: dict[str, bytes] = {}
    signed_feed = False
    for raw in old.split(b"\n"):
        record = parse(raw, limits, parse_line) if raw.strip() else None
        if isinstance(record, dict):
            before.setdefault(record["id"], raw)
            signed_feed = signed_feed or "seq" in record
    after, removed = _compacted(new, before, owner, limits, signed_feed, sealed, segment)
    if after is None:
        return None
    missing = before.keys() - after.keys()
    if not missing <= removed.keys() or any(after[i] != raw for i, raw in before.items()
                                            if i in after):
        return None
    for rid in missing:  # cleanup removes closed ephemeral messages and their receipts only
        record = parse(before[rid], limits, parse_line)
        if not isinstance(record, dict) or not (record["kind"] == "receipt" or (
                record["kind"] == "message" and record.get("ephemeral") is True)):
            return None
        if removed[rid] is not None and removed[rid] != _sha256(before[rid]):
            return None  # (a signed marker names the line it removed by its hash)
    return sorted(missing)


def _compacted(new: bytes, before: dict[str, bytes], owner: str, limits: Limits,
               signed_feed: bool, sealed, segment: str | None
               ) -> tuple[dict[str, bytes] | None, dict[str, str | None]]:
    """The records ``new`` holds (id -> line; None when a stub does not stand for the
    line it replaces) and the ids its owner's markers remove (id -> the removed line's
    sha256 a signed marker names, None when unsigned)."""
    from beadsmail.records import parse_line

    after: dict[str, bytes] = {}
    removed: dict[str, str | None] = {}
    for raw in new.split(b"\n"):
        record = parse(raw, limits, parse_line) if raw.strip() else None
        if not isinstance(record, dict):
            continue
        if record["kind"] == "dropped":
            # a signed feed's stub for a removed line: it must stand for that very line
            line = before.get(record["id"])
            if line == raw:  # (left by an earlier compaction)
                after.setdefault(record["id"], raw)
            elif line is not None and _sha256(line) != record["hash"]:
                return None, {}
            continue
        after.setdefault(record["id"], raw)
        if record["kind"] != "compaction" or record["replica"] != owner or (
                segment is not None and record["segment"] != segment):
            continue
        verdict = sealed(record) if sealed is not None else None
        if verdict is True:
            hashes = record.get("hashes") or []
            if len(hashes) == len(record["removed"]):
                removed.update(zip(record["removed"], hashes, strict=True))
        elif verdict is None and not signed_feed:
            removed.update((rid, None) for rid in record["removed"])
    if not removed and before.keys() - after.keys():
        return None, {}
    return after, removed


def _sha256(raw: bytes) -> str:
    import hashlib

    return hashlib.sha256(raw).hexdigest()
