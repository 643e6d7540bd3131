"""Raw object access for the trust boundary: sizes from headers, entries, bytes.

Nothing here interprets what it reads (``beadsmail.boundary`` does). What it
guarantees is that reading a hostile object can cost no more than asked: an
object's size comes from its header (a loose object's first bytes inflated, or a
pack entry's header and, for a delta, the first bytes of the delta, which state
the size of the result) before anything loads it, and a malformed object is a
reason (a string), never an exception.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from dulwich.objects import Blob, Tree

TREE_ENTRY_BYTES = 300  # an entry is mode, name (<= 255 bytes in practice) and 20 bytes
BAD_OBJECT = (ValueError, TypeError, AssertionError, zlib.error, OSError, IndexError)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A little-endian base-128 size (pack entry and delta headers)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def loose_size(path: Path) -> int | None:
    """The size a loose object states in its header, or None if it is not there."""
    try:
        with open(path, "rb") as f:
            head = zlib.decompressobj().decompress(f.read(256), 64)
    except FileNotFoundError:
        return None
    kind, _, rest = head.partition(b" ")
    return int(rest.split(b"\0", 1)[0])


def packed_size(pack, sha: bytes) -> int | None:
    """The size of an object in one pack, from its entry header (and its delta's)."""
    try:
        offset = pack.index.object_offset(sha)
    except KeyError:
        return None
    with open(pack.data.path, "rb") as f:
        f.seek(offset)
        head = f.read(64)
        byte = head[0]
        kind, size, shift, pos = (byte >> 4) & 7, byte & 15, 4, 1
        while byte & 0x80:
            byte = head[pos]
            size |= (byte & 0x7F) << shift
            shift, pos = shift + 7, pos + 1
        if kind < 6:
            return size
        if kind == 6:  # offset delta: a base offset in git's own encoding follows
            while head[pos] & 0x80:
                pos += 1
            pos += 1
        else:  # reference delta: the base's 20-byte id follows
            pos += 20
        f.seek(offset + pos)
        delta = zlib.decompressobj().decompress(f.read(256), 32)
    _, at = _varint(delta, 0)  # the base's size, then the result's
    return _varint(delta, at)[0]


def object_size(objects, common: Path, sha: bytes) -> int | None | str:
    """An object's size without loading it: None when missing, a reason when unreadable."""
    hexsha = sha.decode()
    try:
        size = loose_size(common / "objects" / hexsha[:2] / hexsha[2:])
        if size is not None:
            return size
        for pack in objects.packs:
            size = packed_size(pack, sha)
            if size is not None:
                return size
    except BAD_OBJECT as exc:
        return f"object {hexsha} is malformed ({exc.__class__.__name__})"
    return None


def tree_entries(get, sha: bytes, limit: int) -> list[tuple[bytes, int, bytes]] | str:
    """A tree's entries (name, mode, id), or why not (not a tree, too many entries)."""
    try:
        obj = get(sha)
    except KeyError:
        return f"tree {sha.decode()} is missing from the repository; run 'bd doctor'"
    except BAD_OBJECT as exc:
        return f"object {sha.decode()} is malformed ({exc.__class__.__name__})"
    if not isinstance(obj, Tree):
        return f"object {sha.decode()} is not a directory (tree)"
    try:
        listing = [(name, mode, oid) for name, mode, oid in obj.iteritems()]
    except BAD_OBJECT as exc:
        return f"tree {sha.decode()} is malformed ({exc.__class__.__name__})"
    if len(listing) > limit:
        return f"directory of {len(listing)} entries; the limit is {limit} (boundary.tree_entries)"
    return listing


def blob_bytes(get, sha: bytes) -> bytes | str:
    """A blob's bytes, or why not."""
    try:
        obj = get(sha)
    except BAD_OBJECT as exc:
        return f"object {sha.decode()} is malformed ({exc.__class__.__name__})"
    if not isinstance(obj, Blob):
        return f"object {sha.decode()} is not a file (blob)"
    return obj.as_raw_string()
