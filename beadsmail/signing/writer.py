"""The write side of a signed feed: this replica's key, and where its feed stands.

The feed's position (seq and hash of its last line) is kept in
``<common git dir>/beadsmail/feed_tip`` and checked against the store: when the
last line of this replica's newest segment is that line (the common case: one
sha256), the write continues from it. Otherwise (the file is missing, or a write
landed without updating it) the replica's segments are read back from the end
for the last line this replica signed, with its own key; lines others put into
its directory are never chained onto. If the file is ahead of the store (lines
of ours the store lost), the feed continues after the file's position: a gap
others see as lines missing, never a second line for one position.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from beadsmail.signing import feed, keys


class Signer:
    def __init__(self, ws) -> None:
        self.ws = ws
        path = ws.config.get("security", {}).get("key")
        self.key_path = Path(os.path.expanduser(path)) if path else \
            ws.loc.state_dir / "signing_key"
        self.tip_path = ws.loc.state_dir / "feed_tip"
        self._key: keys.SigningKey | None = None
        self._last: tuple[int, str] | None = None
        self._bindings = None  # (bindings.Bindings, as ``may_write`` read them)

    @property
    def key(self) -> keys.SigningKey:
        if self._key is None:
            self._key = keys.load_or_create(self.key_path, f"beadsmail replica {self.ws.replica}")
        return self._key

    def seal(self, records: list[dict], make_key) -> tuple[list[dict], list[bytes]]:
        return feed.seal(records, self.tip(), self.key, make_key)

    def written(self, lines: list[bytes], commit: bytes) -> None:
        """Note the new position once the write is committed (in ``commit``)."""
        last = json.loads(lines[-1])
        self._last = (last["seq"], feed.line_hash(lines[-1]))
        tmp = self.tip_path.with_name(f"feed_tip.{os.getpid()}.tmp")
        tmp.write_text(f"{self._last[0]} {self._last[1]} {commit.decode()}\n", "ascii")
        os.replace(tmp, self.tip_path)

    def may_write(self, actor: str) -> None:
        """Refuse, before anything is written, to write as an identity this clone has
        bound to other replicas: every clone (this one too, on a rebuild) would refuse
        the record, so the write would look done and reach nobody."""
        from beadsmail.errors import PermissionDenied
        from beadsmail.signing.bindings import Bindings

        bindings = self._bindings = Bindings(self.ws.loc.state_dir / "bindings.json")
        mine = self.ws.replica
        if not bindings.known(actor) or mine in bindings.bound(actor):
            return
        bound = ", ".join(bindings.bound(actor)) or "none"
        if mine in bindings.agents[actor]["revoked"]:
            why = f"this clone's replica {mine} was revoked for {actor}"
        else:
            why = f"{actor} is bound to replica(s) {bound}, not to this clone's ({mine})"
        raise PermissionDenied(
            f"{why}: every clone would refuse the record, so nothing was written; from a "
            f"clone bound to {actor}, or as a manager, run 'bd agent trust {actor} --add "
            f"{mine} --publish' and sync here (or 'bd agent trust {actor} --add {mine}' "
            "to trust it on this clone only)")

    def folded(self, conn, actor: str) -> None:
        """The write is in the index: so is the feed's new position, the signature is
        known good (a rebuild does not check it again), and an identity this replica
        writes as for the first time is bound to it here (first use; ``may_write``
        refused the write if another replica had it)."""
        from beadsmail.index import feeds as feeds_index
        from beadsmail.signing.bindings import Bindings

        if self._last is None:
            return
        bindings = self._bindings or Bindings(self.ws.loc.state_dir / "bindings.json")
        self._bindings = None  # (read under this write's lock by ``may_write``)
        if not bindings.known(actor):
            bindings.add(actor, self.ws.replica, "first use")
            bindings.save()
        seq, digest = self._last
        if self.ws.policy != "off":  # (under 'off' no fold keeps feed states)
            feeds_index.save(conn, [(self.ws.replica, self.key.public, seq, digest)])
        cache = feed.SignatureCache(self.ws.loc.state_dir / "signatures.cache")
        cache.add(bytes.fromhex(digest), self.key.public)
        cache.save()

    # -- where the feed stands ----------------------------------------------------------

    def _stored_tip(self) -> tuple[int, str, str] | None:
        try:
            seq, digest, commit = self.tip_path.read_text("ascii").split()
            return int(seq), digest, commit
        except (OSError, ValueError):
            return None

    def tip(self) -> tuple[int, str] | None:
        stored = self._stored_tip()
        head = self.ws.writer.head()
        if stored is not None and head is not None and head.decode() == stored[2]:
            return stored[:2]  # (the common case: our own write is the store's last commit)
        stored = stored[:2] if stored is not None else None
        lines = self._own_lines()
        last = next(lines, None)
        if stored is not None and last is not None and feed.line_hash(last) == stored[1]:
            return stored
        found = None
        for raw in [last, *lines] if last is not None else []:
            found = self._mine(raw, stored)
            if found is not None:
                break
        if stored is not None and (found is None or found[0] < stored[0]):
            return stored
        return found

    def _mine(self, raw: bytes, stored: tuple[int, str] | None) -> tuple[int, str] | None:
        """(seq, hash) of a line this replica wrote last in a write, or None."""
        import base64

        try:
            record = json.loads(raw)
            seq = record["seq"]
        except (ValueError, KeyError, TypeError):
            return None
        digest = feed.line_hash(raw)
        if stored is not None and digest == stored[1]:
            return seq, digest
        try:
            signature = base64.b64decode(record["sig"])
        except (KeyError, TypeError, ValueError):
            return None
        if keys.verify(self.key.public, signature, feed.signed_bytes(record)):
            return seq, digest
        return None

    def _own_lines(self):
        """This replica's lines in the store, newest first (read lazily, segment by segment,
        through the boundary: names it refuses are not ours)."""
        from beadsmail import boundary

        ws = self.ws
        log, _ = boundary.log_tree(ws.writer, ws.writer.head())
        replicas, _ = boundary.entries(ws.writer, log, "", True, ws.limits)
        prefix = ws.replica + "/"
        segments, _ = boundary.entries(ws.writer, replicas.get(ws.replica.encode()), prefix,
                                       False, ws.limits)
        mine = sorted((prefix + name.decode(), blob) for name, blob in segments.items())
        for path, blob in reversed(mine):
            content = boundary.read_blob(ws.writer, path, blob, ws.limits)
            if isinstance(content, bytes):
                yield from (raw for raw in reversed(content.split(b"\n")) if raw.strip())
