"""Signed feeds: each replica's lines form a hash chain, and each write is signed.

A replica's *feed* is its lines in feed order (segment name order, then line
order). Records written with signing carry ``seq`` (1-based position in the
feed) and ``prev`` (sha256 hex of the previous feed line's bytes as stored;
null for seq 1). The last record of each write carries ``sig``, the replica
key's Ed25519 signature of that record's canonical bytes without ``sig``; since
those bytes hold ``prev``, one signature covers every earlier line of the feed
through the chain. The first record of a feed is a ``key`` record (``op``
``publish``) naming the public key, signed by it; ``op: rotate`` names a new
key and is signed with the old one.

Verification (``Checker``) runs as segments are read, right after a line is
parsed, with each feed's state (key, last verified seq and line hash) supplied by
the caller (``load``), so a refresh verifies only lines appended since: one sha256
per line, one signature check per write (answered from a cache of good signatures,
``SignatureCache``, when a rebuild sees the same line again). Each line comes out as

- ``verified``: on the chain from the last verified line to a good signature;
- ``unverified``: no ``seq`` (written before signing, or by an older version);
- bad (a *problem*: kept out of the state, listed by ``bd doctor``): a bad
  signature, a line not on the signed chain (inserted), lines missing from the
  middle (the next signed line names a predecessor this clone never saw), a fork
  (a second signed line for a position already taken), a ``replica`` field that
  is not the feed's, lines after the last signature of a segment (no write ends
  unsigned), a key change that is not a rotation signed with the old key, a
  feed publishing a key other than the one pinned for its replica or the one this
  clone verified for it before (``seen``: a replica's seq-1 key never changes, a
  rotation is announced later in the same feed).

Compaction (``cleanup``) replaces a removed line by a ``dropped`` stub holding its
seq, prev and sha256, and ends the segment with a ``compaction`` marker that the
feed's key signs (``seal_marker``) over the segment, the removed ids and the
removed lines' hashes. In a feed with a key, a marker without that signature is
not its owner's (a problem), and so is a stub no such marker in its segment names.
A stub on the verified chain stands for its line: the line itself, met in another
head before or after, is that line (``stood``), never a second branch.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path

from beadsmail import records as rec
from beadsmail.signing import keys

VERIFIED, UNVERIFIED, FORGED = "verified", "unverified", "forged"
KNOWN = "known"  # a line this clone folded before (read again through another head)


def line_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def signed_bytes(record: dict) -> bytes:
    return rec.dumps({k: v for k, v in record.items() if k != "sig"})


# -- writing -------------------------------------------------------------------------


def seal(records: list[dict], tip: tuple[int, str] | None, key: keys.SigningKey,
         make_key: Callable[[dict], dict]) -> tuple[list[dict], list[bytes]]:
    """The records and lines of one write: ``records`` given feed fields, the last one
    signed. ``tip`` is (seq, line hash) of this replica's last feed line, None before
    its first: then a ``key`` record publishing the key (``make_key(fields)``) comes first.
    """
    if tip is None:
        records = [make_key({"op": "publish", "key": key.openssh_public}), *records]
        seq, prev = 0, None
    else:
        seq, prev = tip
    lines = []
    for n, record in enumerate(records):
        seq += 1
        record["seq"], record["prev"] = seq, prev
        if n == len(records) - 1 or record["kind"] == "key":  # (a key record stands alone)
            record["sig"] = base64.b64encode(key.sign(signed_bytes(record))).decode()
        line = rec.dumps(record)
        lines.append(line)
        prev = line_hash(line)
    return records, lines


# -- verifying -----------------------------------------------------------------------


class SignatureCache:
    """Lines whose signature checked good, by (line hash, key): a file of 64-byte entries
    beside the index, so a rebuild checks each signature once. It only saves work: a
    missing or damaged file costs the checks again, never a wrong answer about a line
    this clone did not check itself (only this clone writes the file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: set[bytes] | None = None
        self._new: list[bytes] = []

    def _load(self) -> set[bytes]:
        if self._known is None:
            try:
                data = self.path.read_bytes()
            except OSError:
                data = b""
            self._known = {data[i:i + 64] for i in range(0, len(data) - len(data) % 64, 64)}
        return self._known

    def check(self, digest: bytes, public: bytes, record: dict) -> bool:
        """Whether ``record`` (whose line hashes to ``digest``) carries a good signature
        by ``public``; the signed bytes are built only when the cache does not know it."""
        entry = digest + public
        if entry in self._load():
            return True
        try:
            signature = base64.b64decode(record["sig"])
        except (ValueError, TypeError):
            return False
        if not keys.verify(public, signature, signed_bytes(record)):
            return False
        self._known.add(entry)  # type: ignore[union-attr]
        self._new.append(entry)
        return True

    def add(self, digest: bytes, public: bytes) -> None:
        """A line this replica signed itself (its own write)."""
        entry = digest + public
        if self._known is not None:
            self._known.add(entry)
        self._new.append(entry)

    def save(self) -> None:
        if not self._new:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as fh:
                fh.write(b"".join(self._new))
        except OSError:
            pass  # (a cache: the checks are simply done again)
        self._new.clear()


class Feed:
    """One replica's feed as far as this clone verified it."""

    __slots__ = ("replica", "key", "seq", "hash")

    def __init__(self, replica: str, key: bytes | None, seq: int, hash_: str | None) -> None:
        self.replica, self.key, self.seq, self.hash = replica, key, seq, hash_


class Line:
    __slots__ = ("record", "raw", "path", "line", "digest", "status", "why")

    def __init__(self, record: dict, raw: bytes, path: str, line: int) -> None:
        self.record, self.raw, self.path, self.line = record, raw, path, line
        self.digest = hashlib.sha256(raw).digest()
        self.status: str = UNVERIFIED
        self.why = ""


class Checker:
    """Verifies segments as they are read; ``feeds`` loads and stores feed states."""

    def __init__(self, load: Callable[[str], Feed | None], cache: SignatureCache,
                 pinned: dict[str, str], forks: dict[str, int],
                 stood: Callable[[str, int], str | None] | None = None,
                 seen: dict[str, str] | None = None) -> None:
        self._load = load
        self.cache = cache
        self.pinned = pinned
        self.forks = forks  # replica -> the first seq two signed branches disagree on
        # replica -> the key (OpenSSH text) of the first publish this clone verified for it;
        # a new one is added here and noted in ``learned``
        self.seen = {} if seen is None else seen
        self.learned: set[str] = set()
        self.new_fork = False
        self.feeds: dict[str, Feed] = {}
        self.changed: set[str] = set()
        # (replica, seq) -> the line hash a stub on the verified chain stands for: this
        # fold's, then ``stood`` (what earlier folds kept); ``new_stood`` to keep
        self.stood: dict[tuple[str, int], str] = {}
        self.new_stood: list[tuple[str, int, str]] = []
        self._stood_before = stood

    def feed(self, replica: str) -> Feed:
        if replica not in self.feeds:
            self.feeds[replica] = self._load(replica) or Feed(replica, None, 0, None)
        return self.feeds[replica]

    def forget(self, replicas: set[str]) -> None:
        """Feeds another process verified (a part of a build): their state is in its file."""
        for replica in replicas:
            self.feeds.pop(replica, None)
            self.changed.discard(replica)

    def segment(self, replica: str, lines: list[Line], seen: Callable[[str], bool]) -> None:
        """Give each line of one segment (in order) its status and reason. ``seen(id)``:
        whether the index holds that record already."""
        feed = self.feed(replica)
        pending: list[Line] = []
        order = [ln.record.get("seq") or 0 for ln in lines]
        if any(a > b for a, b in zip(order, order[1:], strict=False)):
            # (a merge that unioned one segment's lines by id may have reordered them:
            # the chain, not the line order, says which comes first)
            lines = sorted(lines, key=lambda ln: ln.record.get("seq") or 0)
        copies: set[bytes] = set()
        for ln in lines:
            r = ln.record
            if ln.digest in copies or ("seq" in r and r["seq"] == feed.seq
                                       and ln.digest.hex() == feed.hash):
                ln.status = KNOWN  # (the same line again: a repeated copy is not a fork)
                continue
            copies.add(ln.digest)
            if r["kind"] == "dropped":
                ln.status = KNOWN  # (stands in for the line compaction removed)
                if "seq" in r and r["seq"] > feed.seq:
                    ln.digest = bytes.fromhex(r["hash"])
                    pending.append(ln)
            elif "seq" in r and r["seq"] <= feed.seq and (r["kind"] == "key" or seen(r["id"])):
                ln.status = KNOWN
            elif "seq" in r and r["seq"] <= feed.seq and \
                    self._stood_for(replica, r["seq"]) == ln.digest.hex():
                ln.status = VERIFIED  # (the line a stub on the chain stands for: not a fork)
            elif "seq" in r and r["seq"] >= self.forks.get(replica, r["seq"] + 1):
                _bad(ln, f"fork: this feed has two signed branches from seq "
                         f"{self.forks[replica]}; nothing from there on is folded")
            elif "seq" not in r:
                ln.status = UNVERIFIED  # (one naming another replica: ``index.copies`` flags it)
            elif r.get("replica") != replica:
                _bad(ln, f"its replica field {r.get('replica')!r} is not the feed's ({replica})")
            elif "sig" not in r:
                pending.append(ln)
            else:
                self._signed(feed, ln, pending)
                pending = []
        for ln in pending:
            if ln.record["kind"] != "dropped":
                _bad(ln, f"seq {ln.record['seq']} is not covered by a signature (a write "
                         "never ends unsigned: lines appended by someone else, or a torn copy)")
        if feed.key is not None:
            _compactions(feed.key, lines)

    def _stood_for(self, replica: str, seq: int) -> str | None:
        found = self.stood.get((replica, seq))
        if found is None and self._stood_before is not None:
            found = self._stood_before(replica, seq)
        return found

    def _signed(self, feed: Feed, ln: Line, pending: list[Line]) -> None:
        r = ln.record
        key = feed.key
        if r["kind"] == "key" and r.get("op") == "publish":
            why = self._foreign_key(feed.replica, keys.parse_public(r["key"]))
            if why and r["seq"] == 1:
                return _bad(ln, why)
            if key is not None or r["seq"] != 1:
                return _bad(ln, "a second key for this feed that is not a rotation signed "
                                "with its key") if key is not None else self._orphan(ln, pending)
            key = keys.parse_public(r["key"])
        if key is None:
            return self._orphan(ln, pending)
        if not self.cache.check(ln.digest, key, r):
            for p in pending:
                if p.record["kind"] != "dropped":
                    _bad(p, f"seq {p.record['seq']} is covered only by a bad signature")
            return _bad(ln, "bad signature (not made by this feed's key)")
        chain = _path_back(ln, pending, feed.hash)
        for p in pending:
            if p not in chain and p.record["kind"] != "dropped":
                _bad(p, "not on the signed chain (a line inserted into this feed)")
        first = chain[0] if chain else ln
        start_prev = first.record["prev"]
        if feed.seq and r["seq"] <= feed.seq:
            at = first.record["seq"]
            for p in [*chain, ln]:
                _bad(p, f"fork: a second signed line for seq {p.record['seq']} of this feed, "
                        f"which this clone already holds up to seq {feed.seq}")
            if at < self.forks.get(feed.replica, at + 1):
                self.forks[feed.replica] = at  # (both branches go: see Reader)
                self.new_fork = True
            return None
        if start_prev != feed.hash or first.record["seq"] != feed.seq + 1:
            ln.why = (f"lines missing before seq {first.record['seq']} (the feed was verified "
                      f"up to seq {feed.seq}): deleted from the middle or rewritten")
        for p in [*chain, ln]:
            if p.record["kind"] != "dropped":
                p.status = VERIFIED
            elif (feed.replica, p.record["seq"]) not in self.stood:
                self.stood[(feed.replica, p.record["seq"])] = p.digest.hex()
                self.new_stood.append((feed.replica, p.record["seq"], p.digest.hex()))
        if r["kind"] == "key" and r.get("op") == "publish" and feed.replica not in self.seen:
            self.seen[feed.replica] = keys.openssh_public(key)  # (remembered: see Reader)
            self.learned.add(feed.replica)
        if r["kind"] == "key" and r.get("op") == "rotate" and isinstance(r.get("key"), str):
            key = keys.parse_public(r["key"])
        feed.key, feed.seq, feed.hash = key, r["seq"], ln.digest.hex()
        self.changed.add(feed.replica)
        return None

    def _foreign_key(self, replica: str, key: bytes) -> str:
        """Why a feed's publish of ``key`` is refused ('' if it is not): a key pinned for
        the replica decides; else the one this clone verified for it before does."""
        pinned = self.pinned.get(replica)
        if pinned is not None:
            return "" if keys.parse_public(pinned) == key else (
                f"this feed publishes key {keys.fingerprint(key)}, not the key pinned for "
                f"replica {replica}")
        seen = self.seen.get(replica)
        if seen is None or seen == keys.openssh_public(key):
            return ""
        return (f"a second key for replica {replica}: {keys.fingerprint(key)} is not the key "
                f"this clone verified before ({keys.fingerprint(keys.parse_public(seen))}); "
                f"if the replica's owner really made a new feed, pin its key with 'bd agent "
                f"keys --pin {replica} --key ...'")

    def _orphan(self, ln: Line, pending: list[Line]) -> None:
        for p in [*pending, ln]:
            _bad(p, "this feed's key record (seq 1) is missing: its beginning was dropped "
                    "or rewritten, so nothing in it can be verified")


def _path_back(ln: Line, pending: list[Line], tip: str | None) -> list[Line]:
    """The pending lines on the chain ending at ``ln``, oldest first."""
    by_hash = {p.digest.hex(): p for p in pending}
    chain: list[Line] = []
    want = ln.record["prev"]
    while want is not None and want != tip and want in by_hash:
        p = by_hash.pop(want)
        if p.record["seq"] != (chain[0].record["seq"] if chain else ln.record["seq"]) - 1:
            break
        chain.insert(0, p)
        want = p.record["prev"]
    return chain


def stub(raw: bytes) -> bytes | None:
    """The line compaction leaves in place of a signed-feed line it removes (kind
    ``dropped``: the line's seq, prev and sha256), or None for a line outside the chain."""
    import json

    try:
        record = json.loads(raw)
        if "seq" not in record:
            return None
        return rec.dumps({"v": rec.FORMAT_VERSION, "kind": "dropped", "replica": record["replica"],
                          "id": record["id"], "seq": record["seq"], "prev": record["prev"],
                          "hash": line_hash(raw)})
    except (ValueError, KeyError, TypeError):
        return None


def _bad(ln: Line, why: str) -> None:
    ln.status, ln.why = FORGED, why


# -- compaction ----------------------------------------------------------------------


def seal_marker(marker: dict, key: keys.SigningKey) -> dict:
    """A ``compaction`` marker signed by the owner's feed key (over every field but
    ``sig``: the segment, the removed ids and the removed lines' hashes)."""
    marker["sig"] = base64.b64encode(key.sign(signed_bytes(marker))).decode()
    return marker


def sealed(marker: dict, public: bytes) -> bool:
    """Whether a ``compaction`` marker carries a good signature by ``public``."""
    sig = marker.get("sig")
    if not isinstance(sig, str):
        return False
    try:
        signature = base64.b64decode(sig)
    except (ValueError, TypeError):
        return False
    return keys.verify(public, signature, signed_bytes(marker))


def removed_by(marker: dict) -> dict[str, str | None]:
    """Removed id -> the sha256 of its line the marker names (None: not named)."""
    hashes = marker.get("hashes") or []
    return {rid: hashes[n] if n < len(hashes) else None
            for n, rid in enumerate(marker.get("removed") or [])}


def _compactions(public: bytes, lines: list[Line]) -> None:
    """In a feed with a key: a marker this key did not sign is not its owner's
    compaction, and a stub that no signed marker of its segment names (with the hash it
    holds) stands for a line its owner never removed."""
    named: dict[str, str | None] = {}
    for ln in lines:
        r = ln.record
        if r["kind"] != "compaction" or ln.status == KNOWN:
            continue
        if ln.status == VERIFIED or sealed(r, public):
            named.update(removed_by(r))
        else:
            _bad(ln, "a compaction marker this feed's key did not sign: not a compaction "
                     "by the segment's owner (a forged rewrite)")
    for ln in lines:
        r = ln.record
        if r["kind"] == "dropped" and named.get(r["id"]) != r["hash"]:
            _bad(ln, f"a dropped stub for seq {r['seq']} that no compaction signed by this "
                     "feed's key names: its line was removed by someone other than its owner")
