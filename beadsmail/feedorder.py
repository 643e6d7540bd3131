"""Segment order: a replica only ever appends segments with later names.

Its writer names a new segment after the newest it holds (``store.writer``), so a
segment of another replica that this clone lacks and that sorts before one it holds
of that replica was put in front of its feed by someone else (a forged feed start
under a new key, read first in feed order). The merge (``store.merge``), ``bd sync``'s
fast-forward check and the fold (``workspace``) refuse such a segment.
"""

from __future__ import annotations

from beadsmail.boundary import SEGMENT_RE

EARLY = ("a new segment that sorts before one this clone holds of its replica (a replica "
         "only appends segments with later names); not taken")


def newest_segment(listing) -> bytes | None:
    """The last well-formed segment name of a replica directory's entries (name -> ...)."""
    return max((n for n in listing if SEGMENT_RE.match(n)), default=None)


def early_segments(held, new: list[str]) -> list[str]:
    """Of segment paths (``<replica>/<name>``) this clone lacks, those that sort before the
    newest segment ``held`` (paths) holds of their replica: a replica's owner only ever
    appends segments with later names, so an earlier one was put in front of its feed."""
    newest: dict[str, str] = {}
    for path in held:
        replica, name = path.split("/", 1)
        newest[replica] = max(newest.get(replica, name), name)
    return [p for p in new if p.split("/", 1)[1] < newest.get(p.split("/", 1)[0], "")]
