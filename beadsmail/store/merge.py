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

import json
from dataclasses import dataclass, field

from dulwich.graph import can_fast_forward, find_merge_base
from dulwich.objects import Blob, Tree
from dulwich.repo import ParentsProvider

TREE_MODE = 0o040000
LOG_PREFIX = b".beads/log/"


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


def merge_commits(writer, ours: bytes, theirs: bytes) -> Merged:
    """The merged root tree of two diverged store commits."""
    bases = find_merge_base(_Graph(writer.objects), [ours, theirs])
    base_tree = writer.commit(bases[0]).tree if bases else None
    merged = Merged(b"")
    tree = _merge_tree(writer, base_tree, writer.commit(ours).tree, writer.commit(theirs).tree,
                       b"", merged.warnings)
    merged.tree = tree if tree is not None else _empty(writer)
    return merged


def merge_trees(writer, base: bytes | None, ours: bytes, theirs: bytes,
                warnings: list[str]) -> bytes:
    """Three-way merge of two root trees (``base`` None: a union that drops nothing)."""
    tree = _merge_tree(writer, base, ours, theirs, b"", warnings)
    return tree if tree is not None else _empty(writer)


def _empty(writer) -> bytes:
    tree = Tree()
    writer._add(tree)
    return tree.id


def _merge_tree(writer, base: bytes | None, ours: bytes | None, theirs: bytes | None,
                path: bytes, warnings: list[str]) -> bytes | None:
    if ours == theirs or base == theirs:
        return ours
    if base == ours:
        return theirs
    trees = [writer.tree(t) if t is not None else Tree() for t in (base, ours, theirs)]
    out = Tree()
    names = sorted({n for t in trees for n in t})
    for name in names:
        b, o, t = (_entry(tree, name) for tree in trees)
        entry = _merge_entry(writer, b, o, t, path + name, warnings)
        if entry is not None:
            out.add(name, entry[0], entry[1])
    if not len(out):
        return None
    writer._add(out)
    return out.id


def _entry(tree: Tree, name: bytes) -> tuple[int, bytes] | None:
    return tree[name] if name in tree else None


def _merge_entry(writer, b, o, t, path: bytes, warnings: list[str]):
    if o == t or b == t:
        return o
    if b == o:
        return t
    if o is None or t is None:  # changed on one side, removed on the other: keep the data
        return o if o is not None else t
    o_tree, t_tree = o[0] == TREE_MODE, t[0] == TREE_MODE
    if o_tree and t_tree:
        base = b[1] if b is not None and b[0] == TREE_MODE else None
        sub = _merge_tree(writer, base, o[1], t[1], path + b"/", warnings)
        return (TREE_MODE, sub) if sub is not None else None
    if o_tree or t_tree:
        warnings.append(f"warning: {path.decode()} is a file on one side and a directory on "
                        "the other; kept this clone's")
        return o
    return (o[0], _merge_blob(writer, o[1], t[1], path, warnings))


def _merge_blob(writer, ours: bytes, theirs: bytes, path: bytes, warnings: list[str]) -> bytes:
    a, b = writer.blob(ours), writer.blob(theirs)
    if a.startswith(b):
        return ours
    if b.startswith(a):
        return theirs
    if not path.startswith(LOG_PREFIX):
        keep = ours if a < b else theirs  # symmetric: every clone keeps the same bytes
        warnings.append(f"warning: {path.decode()} differs on both sides; kept one version")
        return keep
    blob = Blob.from_string(union_lines(a, b))
    writer._add(blob)
    warnings.append(f"warning: segment {path.decode()} was written on both sides (a copied .git "
                    "shares a replica id?); merged its lines by record id")
    return blob.id


def union_lines(a: bytes, b: bytes) -> bytes:
    """Every record of both segments once (by id), ordered by ``(clock, id)``.

    Lines that do not parse are kept too (once each, after the records), so a
    fold still reports them with file and line.
    """
    records: dict[str, tuple[tuple[int, str], bytes]] = {}
    other: set[bytes] = set()
    for raw in a.split(b"\n") + b.split(b"\n"):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            key = (int(record["clock"]), str(record["id"]))
        except (ValueError, KeyError, TypeError):
            other.add(raw)
            continue
        known = records.get(key[1])
        if known is None or raw < known[1]:
            records[key[1]] = (key, raw)
    lines = [raw for _, raw in sorted(records.values())] + sorted(other)
    return b"".join(line + b"\n" for line in lines)


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
            count += len(set(content.split(b"\n")) - set(previous.split(b"\n")) - {b""})
    return count


def _lines(data: bytes) -> int:
    return data.count(b"\n")
