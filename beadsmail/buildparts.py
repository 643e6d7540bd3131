"""A whole build of the index, its second half loaded meanwhile by a child process.

``sources(ws, heads, parse)`` yields what ``Index.load`` folds, in the order a fold
reads it: each head's new segments (the first head's are all of them). From
``SPLIT_SEGMENTS`` segments on, a forked child loads the second half of the first
head's into a scratch index (``Index.load_part``) while this process reads the first
half; the child's file comes in their place, or, if the child failed, those segments
are read here.

Signed feeds are verified as segments are read (``signing.reader``), and a feed's
chain runs across segments. When the split falls inside one replica's feed, the
child starts that feed from the last line of the first half (its seq and sha256)
with the feed's key, read from its first line, as an assumption (``join_state``);
this process checks the assumption once it has verified the first half itself
(``joins``), and builds again without splitting if it does not hold. A feed whose
first half rotates its key is not split inside. A half holding a record that binds or
revokes an identity is read by this process (``BINDING``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

# A build splits the first head's segments with a child process from this many on
# (~16 MB of records: a fork costs far less than parsing them).
SPLIT_SEGMENTS = 16
# The child's exit status when its half holds a record that binds or revokes an identity
# (``signing.reader``): such a record changes how records before and after it are judged,
# and the roster a manager's is checked against is the whole store's, so its part is
# dropped and this process reads those segments itself, as a build in one piece would.
BINDING = 3


def _can_fork() -> bool:
    """Whether a build may fork: a POSIX system with more than one CPU, and a process with
    one thread (``bd serve`` has others: forking them is not safe)."""
    import threading

    return hasattr(os, "fork") and (os.cpu_count() or 1) > 1 and threading.active_count() == 1


def sources(ws, heads: dict[str, str], parse: Callable[[bytes], dict]) -> Iterator:
    for n, (ref, old, sha) in enumerate(ws._changes({}, heads)):
        segments = ws._segments(ref, old, sha)
        half = len(segments) // 2 if n == 0 and len(segments) >= SPLIT_SEGMENTS \
            and _can_fork() and not ws._no_split else len(segments)
        assumed = join_state(lambda b: _blob_of(ws, b), segments, half) \
            if half < len(segments) else False
        child = _start_part(ws, segments[half:], assumed) if assumed is not False else None
        if child is None:
            half = len(segments)
        try:
            yield (item for segment in segments[:half]
                   for item in ws._read_segment(*segment, parse))
            if child is not None:
                pid, part = child
                child = None
                if assumed and not joins(assumed, ws.reader.checker.feed(assumed[0])):
                    ws._refold = ws._no_split = True
                if os.waitpid(pid, 0)[1] == 0:
                    from beadsmail.index.feeds import claims_of

                    ws.reader.absorb(claims_of(part))
                    ws.reader.checker.forget({s[0].split("/", 1)[0] for s in segments[half:]})
                    yield part
                else:
                    part.unlink(missing_ok=True)
                    yield (item for segment in segments[half:]
                           for item in ws._read_segment(*segment, parse))
        finally:
            if child is not None:  # (the build failed meanwhile)
                import signal

                os.kill(child[0], signal.SIGKILL)
                os.waitpid(child[0], 0)
                child[1].unlink(missing_ok=True)


def _blob_of(ws, blob: str) -> bytes:
    from beadsmail import boundary

    content = boundary.read_blob(ws.writer, "", blob.encode(), ws.limits)
    return content if isinstance(content, bytes) else b""


def _start_part(ws, segments: list[tuple[str, str]], assumed) -> tuple[int, Path] | None:
    from beadsmail import records as rec
    from beadsmail.index import Index

    part = Path(f"{ws.index.path}.part-{os.getpid()}")
    try:
        pid = os.fork()
    except OSError:  # (no memory or processes left for one) read them here instead
        return None
    if pid == 0:  # the child: its own store objects and a scratch index; no cleanup
        code = 1
        try:
            # not the parent's locks (a killed parent must not leave them held), files
            # or connections: only what it opens itself
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            child = type(ws)(ws.loc, ws.config)
            child._index = Index.scratch(part)
            child.reader.part = True
            if assumed:
                from beadsmail.signing.feed import Feed

                child.reader.checker.feeds[assumed[0]] = Feed(*assumed)
            parse = rec.fast_parser()
            saw_binding = []

            def items():
                for segment in segments:
                    yield from child._read_segment(*segment, parse)
                saw_binding.append(child.reader.saw_binding)
                child._close_reader()

            child.index.load_part(items())
            code = BINDING if saw_binding[0] else 0
        finally:
            os._exit(code)
    return pid, part


def join_state(blob_of, segments: list[tuple], half: int):
    """``(replica, key, seq, hash)`` the child assumes for the feed split at ``half``; None
    when the split falls between two replicas (or in an unsigned feed); False when it
    must not split there."""
    replica = segments[half][0].split("/", 1)[0]
    own = [seg[1] for seg in segments[:half] if seg[0].split("/", 1)[0] == replica]
    if not own:
        return None
    try:
        last = next(x for x in reversed(blob_of(own[-1]).split(b"\n")) if x.strip())
        first = next(x for x in blob_of(own[0]).split(b"\n") if x.strip())
        tip, head = json.loads(last), json.loads(first)
        if "seq" not in tip:
            return None
        if head.get("kind") != "key" or any(b'"op":"rotate"' in blob_of(b) for b in own):
            return False
        from beadsmail.signing.keys import parse_public

        return replica, parse_public(head["key"]), tip["seq"], hashlib.sha256(last).hexdigest()
    except (StopIteration, ValueError, KeyError, TypeError, AttributeError):
        return False
    except Exception:  # noqa: BLE001 (InvalidInput from the key: just do not split there)
        return False


def joins(assumed, feed) -> bool:
    """Whether the first half ended where the child assumed it would."""
    return assumed is None or (feed.seq, feed.hash) == (assumed[2], assumed[3])
