"""Merging two store commits: a union of segment files, three-way at file level.

Each replica appends only to its own ``.beads/log/<replica>/`` segments, so two
store commits almost never touch the same file: the merged tree takes every
file from the side that changed it since the merge base (new files are added,
a segment compacted or removed by its owner stays compacted or removed).
Subtrees equal by id are never opened, so a merge costs what changed, not what
is stored.

Should one file differ on both sides (two clones sharing a replica id after a
copied ``.git``, a hand edit), no record is ever dropped: if one blob is a
byte prefix of the other the longer wins, otherwise the lines of both are
unioned by record id, ordered by ``(clock, id)``, and a warning names the file.
Every rule is symmetric, so clones that merge the same commits in either order
build the same tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dulwich.graph import can_fast_forward, find_merge_base
from dulwich.objects import Blob, Tree
from dulwich.repo import ParentsProvider

TREE_MODE = 0o040000
LOG_PATH = b".beads/log"


class _Graph:
    """What dulwich's graph functions need from a repository: objects and parents."""

    def __init__(self, objects) -> None:
        self.object_store = objects

    def parents_provider(self) -> ParentsProvider:
        return ParentsProvider(self.object_store)


def relation(writer, local: bytes | None, remote: bytes | None) -> str:
    """How ``remote`` relates to ``local``: none, adopt, same, ahead, behind or diverged.

    ``ahead``: local already contains remote; ``behind``: local can fast-forward to it.
    """
    if remote is None:
        return "none"
    if local is None:
        return "adopt"
    if local == remote:
        return "same"
    graph = _Graph(writer.objects)
    if can_fast_forward(graph, remote, local):
        return "ahead"
    if can_fast_forward(graph, local, remote):
        return "behind"
    return "diverged"


@dataclass
class Merged:
    tree: bytes
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Ctx:
    writer: object
    limits: object
    warnings: list[str]
    own: str | None  # this clone's replica: no other side adds files to its directory
    sealed: object = None  # marker -> whether its owner's verified key signed it (compaction_of)


def merge_commits(writer, ours: bytes, theirs: bytes, limits, own: str | None = None,
                  sealed=None) -> Merged:
    """The merged root tree of two diverged store commits (``sealed``: see
    ``boundary.compaction_of``)."""
    bases = find_merge_base(_Graph(writer.objects), [ours, theirs])
    base_tree = writer.commit(bases[0]).tree if bases else None
    merged = Merged(b"")
    merged.tree = merge_trees(writer, base_tree, writer.commit(ours).tree,
                              writer.commit(theirs).tree, merged.warnings, limits, own, sealed)
    return merged


def merge_trees(writer, base: bytes | None, ours: bytes, theirs: bytes, warnings: list[str],
                limits=None, own: str | None = None, sealed=None) -> bytes:
    """Merge two root trees: ``.beads/log`` by the append rule whatever ``base`` says
    (see ``_merge_log``), the rest three-way (``base`` None: a union)."""
    from beadsmail.boundary import Limits

    ctx = _Ctx(writer, limits or Limits(), warnings, own, sealed)
    tree = _merge_tree(ctx, base, ours, theirs, b"")
    return tree if tree is not None else _empty(writer)


def _empty(writer) -> bytes:
    tree = Tree()
    writer._add(tree)
    return tree.id


def _merge_tree(ctx: _Ctx, base: bytes | None, ours: bytes | None, theirs: bytes | None,
                path: bytes) -> bytes | None:
    if ours == theirs or base == theirs:
        return ours
    if base == ours and path not in (b"", b".beads/"):  # (records: never without the append check)
        return theirs
    trees = [_listing(ctx, t) for t in (base, ours, theirs)]
    out = Tree()
    for name in sorted({n for t in trees for n in t}):
        b, o, t = (tree.get(name) for tree in trees)
        entry = _merge_log(ctx, o, t) if path + name == LOG_PATH else \
            _merge_entry(ctx, b, o, t, path + name)
        if entry is not None:
            out.add(name, entry[0], entry[1])
    if not len(out):
        return None
    ctx.writer._add(out)
    return out.id


def _listing(ctx: _Ctx, tree: bytes | None) -> dict[bytes, tuple[int, bytes]]:
    from beadsmail import boundary

    return boundary.listing(ctx.writer, tree, ctx.limits)


def _merge_entry(ctx: _Ctx, b, o, t, path: bytes):
    if o == t or b == t:
        return o
    if b == o and path != b".beads":  # (records: never without the append check)
        return t
    if o is None or t is None:  # changed on one side, removed on the other: keep the data
        return o if o is not None else t
    o_tree, t_tree = o[0] == TREE_MODE, t[0] == TREE_MODE
    if o_tree and t_tree:
        base = b[1] if b is not None and b[0] == TREE_MODE else None
        sub = _merge_tree(ctx, base, o[1], t[1], path + b"/")
        return (TREE_MODE, sub) if sub is not None else None
    if not (o_tree or t_tree):
        from beadsmail import boundary

        a, b = (boundary.read_blob(ctx.writer, path.decode(), e[1], ctx.limits) for e in (o, t))
        keep = o if not isinstance(b, bytes) or isinstance(a, bytes) and a < b else t
        ctx.warnings.append(f"warning: {path.decode()} differs on both sides; kept one version")
        return keep
    ctx.warnings.append(f"warning: {path.decode()} is a file on one side and a directory on "
                        "the other; kept this clone's")
    return o


# -- .beads/log: append-only, whatever the history says ---------------------------------


def _merge_log(ctx: _Ctx, o, t):
    """``.beads/log`` of both sides: every replica directory of ours as it is, plus what
    theirs adds that passes the boundary. No base is consulted: a segment missing on
    one side is kept, and two versions of one segment merge by the append rule."""
    from beadsmail import boundary

    if t is None or t[0] != TREE_MODE or o == t:
        return o
    if o is None or o[0] != TREE_MODE:
        return (TREE_MODE, _filtered(ctx, t[1], "", True)) if o is None else o
    ours = _listing(ctx, o[1])
    theirs, rejected = boundary.entries(ctx.writer, t[1], "", True, ctx.limits)
    _refused(ctx, rejected)
    out = _tree_of(ours)
    for name, sha in sorted(theirs.items()):
        mine = ours.get(name)
        if mine is None:
            out.add(name, TREE_MODE, _filtered(ctx, sha, name.decode() + "/", False))
        elif mine[0] != TREE_MODE:
            ctx.warnings.append(f"warning: .beads/log/{name.decode()} is not a directory here; "
                                "kept this clone's")
        elif mine[1] != sha:
            out.add(name, TREE_MODE, _merge_replica(ctx, name.decode(), mine[1], sha))
    ctx.writer._add(out)
    return (TREE_MODE, out.id)


def _merge_replica(ctx: _Ctx, replica: str, ours: bytes, theirs: bytes) -> bytes:
    from beadsmail import boundary, feedorder

    mine = _listing(ctx, ours)
    other, rejected = boundary.entries(ctx.writer, theirs, replica + "/", False, ctx.limits)
    _refused(ctx, rejected)
    out = _tree_of(mine)
    newest = feedorder.newest_segment(mine)
    for name, sha in sorted(other.items()):
        have = mine.get(name)
        if have is None and replica == ctx.own:
            ctx.warnings.append(f"warning: refused from the other side: .beads/log/{replica}/"
                                f"{name.decode()}: a file this clone never wrote, in its own "
                                "replica directory")
        elif have is None and newest is not None and name < newest:
            ctx.warnings.append(f"warning: refused from the other side: .beads/log/{replica}/"
                                f"{name.decode()}: {feedorder.EARLY}")
        elif have is None:
            out.add(name, boundary.REGULAR_MODES[0], sha)
        elif have[1] != sha:
            out.add(name, have[0], _merge_segment(ctx, f"{replica}/{name.decode()}", have[1], sha))
    ctx.writer._add(out)
    return out.id


def _merge_segment(ctx: _Ctx, path: str, ours: bytes, theirs: bytes) -> bytes:
    """The longer of two segments when one is an append of the other; the owner's
    compaction (``boundary.compaction_of``); else the union of both by record id."""
    from beadsmail import boundary

    a = boundary.read_blob(ctx.writer, path, ours, ctx.limits)
    b = boundary.read_blob(ctx.writer, path, theirs, ctx.limits)
    if not isinstance(b, bytes):
        _refused(ctx, [b])
        return ours
    if not isinstance(a, bytes):
        return theirs  # (ours cannot be read: missing or refused; theirs is sound)
    owner = path.split("/", 1)[0]
    if a.startswith(b):
        return ours
    if b.startswith(a) and (owner != ctx.own or not _refused_lines(b[len(a):], ctx.limits)):
        return theirs
    # (this clone compacts its own segments itself: another side's never counts as that)
    for old, new, sha in ((a, b, theirs), (b, a, ours)) if owner != ctx.own else ():
        removed = boundary.compaction_of(old, new, owner, ctx.limits, ctx.sealed,
                                         path.split("/", 1)[1])
        if removed is not None:
            ctx.warnings.append(f"note: segment {path} was compacted by its owner "
                                f"({len(removed)} record(s) removed after cleanup)")
            return sha
    # (in this clone's own segments, a line the boundary refuses is kept only if it was
    # here: this clone never wrote it, so it came from another history)
    blob = Blob.from_string(union_lines(a, b, ctx.limits, refused_from_b=owner != ctx.own,
                                        mine=owner == ctx.own))
    ctx.writer._add(blob)
    ctx.warnings.append(f"warning: segment {path} differs on both sides and neither is an append "
                        "of the other (rewritten history, or a copied .git sharing a replica "
                        "id); merged its lines by record id, nothing dropped")
    return blob.id


def _filtered(ctx: _Ctx, tree: bytes, prefix: str, replicas: bool) -> bytes:
    """A tree of theirs with only the entries that pass the boundary (refusals reported)."""
    from beadsmail import boundary

    good, rejected = boundary.entries(ctx.writer, tree, prefix, replicas, ctx.limits)
    if not rejected:
        return tree
    _refused(ctx, rejected)
    out = Tree()
    for name, sha in good.items():
        out.add(name, TREE_MODE, _filtered(ctx, sha, name.decode() + "/", False)) if replicas \
            else out.add(name, boundary.REGULAR_MODES[0], sha)
    ctx.writer._add(out)
    return out.id


def _tree_of(entries: dict[bytes, tuple[int, bytes]]) -> Tree:
    out = Tree()
    for name, (mode, sha) in entries.items():
        out.add(name, mode, sha)
    return out


def _refused(ctx: _Ctx, rejected: list) -> None:
    ctx.warnings += [f"warning: refused from the other side: .beads/log/{r.path}: {r.why}"
                     for r in rejected]


def union_lines(a: bytes, b: bytes, limits, refused_from_b: bool = True,
                mine: bool = False) -> bytes:
    """Every record of both segments once (by id), ordered by ``(clock, id)``; of two
    lines with one id, a record beats a ``dropped`` stub (the line beats what stands in
    for it), then the smaller bytes (every clone keeps the same one). A record without
    a clock (a ``dropped`` stub) orders as clock 0: no field a record lacks stops a merge.

    Lines the boundary refuses are kept too (once each, after the records), so a
    fold still reports them with file and line; those of ``b`` only if
    ``refused_from_b``. In this clone's own segment (``mine``) the ``dropped`` stubs and
    ``compaction`` markers only ``b`` holds are left out: this clone compacts its own
    segments itself, and what they stand for is a line it keeps.
    """
    from beadsmail import boundary
    from beadsmail.records import parse_line

    found: dict[str, tuple[tuple[int, str], tuple[bool, bytes]]] = {}
    other: set[bytes] = set()
    from_a = len(a.split(b"\n"))
    for n, raw in enumerate(a.split(b"\n") + b.split(b"\n")):
        if not raw.strip():
            continue
        record = boundary.parse(raw, limits, parse_line)
        if not isinstance(record, dict):
            if n < from_a or refused_from_b:
                other.add(raw)
            continue
        if mine and n >= from_a and record["kind"] in ("dropped", "compaction"):
            continue
        rank = (record["kind"] == "dropped", raw)
        known = found.get(record["id"])
        if known is None or rank < known[1]:
            clock = record.get("clock")
            found[record["id"]] = ((clock if type(clock) is int else 0, record["id"]), rank)
    lines = [rank[1] for _, rank in sorted(found.values())] + sorted(other)
    return b"".join(line + b"\n" for line in lines)


def drops(writer, ours: bytes, theirs: bytes, limits, own: str | None = None,
          sealed=None) -> list[str]:
    """Why moving from ``ours`` to ``theirs`` (a fast-forward) would drop or rewrite a
    record this clone holds, or take in what the boundary refuses: each segment of ours
    that theirs lacks, or holds in a form that is neither an append of ours nor its
    owner's compaction of it; a file added to this clone's own directory; a refused
    entry theirs changed."""
    from beadsmail import boundary, feedorder

    changed = boundary.walk(writer, ours, theirs, limits)
    found = [f"{r.path}: {r.why}" for r in changed.rejected]  # (a merge leaves them out)
    now = boundary.segments(writer, theirs, limits)
    held = boundary.segments(writer, ours, limits)
    early = feedorder.early_segments(held, [p for p in now if p not in held])
    found += [f"{path}: {feedorder.EARLY}" for path in early]
    if own is not None:
        found += [f"{path} was added to this clone's own replica directory" for path in now
                  if path.startswith(own + "/") and path not in held]
    for path, blob in boundary.walk(writer, theirs, ours, limits).segments:
        if path not in now:
            found.append(f"segment {path} is missing there")
            continue
        old = boundary.read_blob(writer, path, blob, limits)
        new = boundary.read_blob(writer, path, now[path], limits)
        if not isinstance(old, bytes) or not isinstance(new, bytes) or new.startswith(old):
            continue
        owner = path.split("/", 1)[0]
        if owner == own or boundary.compaction_of(old, new, owner, limits, sealed,
                                                  path.split("/", 1)[1]) is None:
            found.append(f"segment {path} is rewritten there (not an append of this clone's)")
    if own is not None:  # lines this clone never wrote, appended to its own segments
        found += [f"segment {path} has lines appended there that the boundary refuses"
                  for path, blob in changed.segments
                  if path.startswith(own + "/") and path in held and
                  _appended_refused(writer, path, held[path], blob, limits)]
    return found


def _refused_lines(data: bytes, limits) -> bool:
    from beadsmail import boundary
    from beadsmail.records import parse_line

    return any(not isinstance(boundary.parse(raw, limits, parse_line), dict)
               for raw in data.split(b"\n") if raw.strip())


def _appended_refused(writer, path: str, old_sha: bytes, new_sha: bytes, limits) -> bool:
    from beadsmail import boundary

    old = boundary.read_blob(writer, path, old_sha, limits)
    new = boundary.read_blob(writer, path, new_sha, limits)
    return isinstance(old, bytes) and isinstance(new, bytes) and new.startswith(old) and \
        _refused_lines(new[len(old):], limits)


def new_records(writer, old: bytes | None, new: bytes | None, limits,
                skip: str | None = None) -> int:
    """How many record lines ``new`` holds that ``old`` does not (segments of ``skip`` aside)."""
    from beadsmail import boundary

    if new is None or old == new:
        return 0
    old_segments = boundary.segments(writer, old, limits) if old is not None else {}
    count = 0
    for path, blob in boundary.walk(writer, old, new, limits).segments:
        if skip is not None and path.startswith(skip + "/"):
            continue
        content = boundary.read_blob(writer, path, blob, limits)
        if not isinstance(content, bytes):
            continue
        before = old_segments.get(path)
        previous = boundary.read_blob(writer, path, before, limits) if before else b""
        if not isinstance(previous, bytes):
            previous = b""
        if content.startswith(previous):
            count += _lines(content[len(previous):])
        else:
            count += sum(_lines(line + b"\n") for line in
                         set(content.split(b"\n")) - set(previous.split(b"\n")) - {b""})
    return count


# Lines of a signed feed that are not records of the state (signing.feed): a feed's key
# and the stubs compaction leaves. Canonical lines hold these bytes exactly; a string
# value never does (its quotes are escaped).
_METADATA = (b'"kind":"key"', b'"kind":"dropped"')


def _lines(data: bytes) -> int:
    return data.count(b"\n") - sum(data.count(m) for m in _METADATA)
