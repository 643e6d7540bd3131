"""Feeds: one ref per replica on the remote, each moved only by its owner.

The local store ref (``refs/heads/beadsmail``) is the merged view: writes append
to it and reads fold it. Each replica also publishes its *feed*,
``refs/heads/beadsmail.feeds/<replica>``: a chain of commits whose tree holds
only that replica's own files (``.beads/store.json`` and, for each directory in
``FEED_DIRS``, ``.beads/<dir>/<replica>``) and whose parent is the previous feed
commit. Only the owner builds it (``build``), from its merged view, so a push of
it is always a fast-forward and two clones never push the same ref.

Other replicas' feeds arrive as remote-tracking refs and are merged into the
view (``merge_into``) as a three-way merge against the feed commit merged last
time, when the new one descends from it. A feed that moved by anything but a
fast-forward (a rewritten history, a fork, a copied ``.git``) is merged with no
base at all: every file is a union, so nothing this clone holds is dropped, and
a warning names the ref. A feed tree is a subset of the view, so replicas'
directories it does not carry are left as they are.
"""

from __future__ import annotations

import time

from dulwich.file import FileLocked
from dulwich.objects import Tree

from beadsmail.errors import StoreError
from beadsmail.store.merge import TREE_MODE, merge_trees
from beadsmail.store.writer import MARKER_PATH, _break_stale

FEED_DIRS = (b"log", b"quarantine")  # .beads/<dir>/<replica>: what a replica owns
DESCENT_LIMIT = 100_000  # commits walked to decide that a feed moved by fast-forward


def feed_tree(writer, view: bytes | None, replica: str) -> bytes | None:
    """The tree of ``replica``'s feed as the view ``view`` holds it (None: nothing of it)."""
    if view is None:
        return None
    root = writer.tree(writer.commit(view).tree)
    beads = writer._sub(root, b".beads")
    if beads is None or MARKER_PATH not in beads:
        return None
    out = Tree()
    out.add(MARKER_PATH, *beads[MARKER_PATH])
    name = replica.encode()
    for d in FEED_DIRS:
        sub = writer._sub(beads, d)
        if sub is not None and name in sub and sub[name][0] == TREE_MODE:
            mine = Tree()
            mine.add(name, TREE_MODE, sub[name][1])
            writer._add(mine)
            out.add(d, TREE_MODE, mine.id)
    if len(out) == 1:
        return None  # the marker alone: this replica wrote nothing yet
    writer._add(out)
    top = Tree()
    top.add(b".beads", TREE_MODE, out.id)
    writer._add(top)
    return top.id


def build(writer, ref: str, view: bytes | None, replica: str,
          remote_tip: bytes | None = None) -> bytes | None:
    """Bring the local feed ref ``ref`` up to the view; return its tip (None: no feed yet).

    ``remote_tip`` is what the remote holds for this feed: when it is not in the
    local feed's history (a clone of this ``.git`` pushed it), it becomes a second
    parent, so the push stays a fast-forward. Call under the store lock."""
    name = ref.encode()
    tip = _read(writer, name)
    tree = feed_tree(writer, view, replica)
    if tree is None:
        return tip
    parents = [tip] if tip else []
    if remote_tip and remote_tip != tip and not descends(writer, tip, remote_tip):
        parents.append(remote_tip)
    if tip and len(parents) == 1 and writer.commit(tip).tree == tree:
        return tip
    new = writer.add_commit(tree, parents, f"feed: {replica}", "beadsmail")
    if not move_ref(writer, name, tip, new):
        raise StoreError(f"{ref} moved while this clone built its feed; run 'bd sync' again")
    return new


def _read(writer, name: bytes) -> bytes | None:
    try:
        return writer.refs[name]
    except KeyError:
        return None


def move_ref(writer, name: bytes, old: bytes | None, new: bytes | None) -> bool:
    """Compare-and-swap any ref (``new`` None deletes it); a dead process's lock is broken."""
    for attempt in range(100):
        try:
            if new is None:
                return bool(writer.refs.remove_if_equals(name, old))
            if old is None:
                return bool(writer.refs.add_if_new(name, new))
            return bool(writer.refs.set_if_equals(name, old, new))
        except FileLocked:
            _break_stale(str(writer.common / (name.decode() + ".lock")))
            time.sleep(0.005 * min(attempt + 1, 10))
    raise StoreError(f"the ref lock {name.decode()}.lock stays held; is a git command running?")


def descends(writer, new: bytes | None, old: bytes) -> bool:
    """Whether ``old`` is ``new`` or one of its ancestors (walking at most DESCENT_LIMIT)."""
    if new is None:
        return False
    seen, todo = set(), [new]
    while todo and len(seen) < DESCENT_LIMIT:
        sha = todo.pop()
        if sha == old:
            return True
        if sha in seen:
            continue
        seen.add(sha)
        try:
            todo += writer.commit(sha).parents
        except KeyError:
            continue  # (a shallow or incomplete history: not known to descend)
    return False


def merge_into(writer, view: bytes | None, feeds: list[tuple[str, bytes | None, bytes]],
               warnings: list[str], limits=None, own: str | None = None,
               sealed=None) -> bytes | None:
    """The view's tree with each feed ``(ref, merged last time, now)`` merged in.

    None when the view holds nothing and no feed brings anything."""
    tree = writer.commit(view).tree if view is not None else None
    for ref, old, new in feeds:
        theirs = writer.commit(new).tree
        base = None
        if old is not None:
            if descends(writer, new, old):
                base = writer.commit(old).tree
            else:
                warnings.append(f"warning: {ref} was rewritten (not a fast-forward of "
                                f"{old.decode()[:12]}); kept every record this clone holds")
        tree = theirs if tree is None else merge_trees(writer, base, tree, theirs, warnings,
                                                       limits, own, sealed)
    return tree
