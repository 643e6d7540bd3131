"""The verification step of the read path: each segment's parsed lines, checked, admitted.

``Reader.segment`` takes the lines the boundary parsed from one segment (record,
raw bytes, path, line), runs the feed checks (``feed.Checker``) and the identity
bindings (``bindings.Bindings``) under the policy, and returns the records to
fold; the rest go to ``index.feeds`` as problems for ``bd doctor``. ``close``
stores the feed states, the bindings and the signature cache. Nothing here is
built while a refresh has nothing new to fold.
"""

from __future__ import annotations

from pathlib import Path

from beadsmail.index import feeds as feeds_index
from beadsmail.signing import bindings as bindings_mod
from beadsmail.signing import feed as feed_mod

Item = tuple[dict, str, str, int]
# Unsigned records that change no state, folded under every policy: the marker an
# owner's compaction leaves in a segment it rewrote (``cleanup``).
MARKERS = ("compaction",)


class Reader:
    def __init__(self, index, state_dir: Path, policy: str, part: bool = False) -> None:
        self._index = index  # (its connection changes during a build: ``index.conn``)
        self.policy = policy
        self.part = part  # loading part of a build for another process
        self.cache = feed_mod.SignatureCache(state_dir / "signatures.cache")
        self.bindings = bindings_mod.Bindings(state_dir / "bindings.json")
        self.checker = feed_mod.Checker(self._load, self.cache, self.bindings.keys,
                                        self.bindings.forks, self._stood,
                                        self.bindings.keys_seen)
        self.problems: list[tuple] = []
        self._pending: list[feed_mod.Line] = []  # bind/revoke records by a possible manager
        self._ref: str | None = None
        # identities first used in this fold: actor -> the (clock, id) of the claim bound
        self._first: dict[str, tuple] = {}
        self._claims: dict[str, tuple[tuple, str]] = {}  # (and the replica bound)
        self.rebound = False
        self.saw_binding = False  # a bind or revoke record (a part of a build hands back)

    def absorb(self, claims: list[tuple[str, int, str, str]]) -> None:
        """First uses another process's part of a build made: where they disagree with
        this one's, the earliest claim binds and the build is done again."""
        for actor, clock, rid, replica in claims:
            claim = (clock, rid)
            if not self.bindings.known(actor):
                self.bindings.add(actor, replica, "first use")
                self._first[actor] = claim
            elif replica not in self.bindings.bound(actor) and actor in self._first:
                if claim < self._first[actor]:
                    self.bindings.agents.pop(actor)
                    self.bindings.add(actor, replica, "first use")
                    self._first[actor] = claim
                self.rebound = True

    def _load(self, replica: str) -> feed_mod.Feed | None:
        row = feeds_index.load(self._index.conn, replica)
        return feed_mod.Feed(replica, *row) if row else None

    def _stood(self, replica: str, seq: int) -> str | None:
        return feeds_index.stood(self._index.conn, replica, seq)

    def segment(self, path: str, parsed: list[tuple[dict, str, int]],
                ref: str | None = None) -> list[Item]:
        """The records to fold of one segment's parsed lines (record, stored text, line),
        read from the store ref ``ref``."""
        self._ref = ref
        if self.policy == "off":
            return [(r, text, path, n) for r, text, n in parsed
                    if r["kind"] not in ("dropped", "key")]
        replica = path.split("/", 1)[0]
        lines = [feed_mod.Line(r, text.encode(), path, n) for r, text, n in parsed]
        self.checker.segment(replica, lines, self.seen)
        out = []
        for ln in lines:
            if ln.status == feed_mod.KNOWN:
                continue
            if ln.status == feed_mod.VERIFIED and ln.why:  # (after lines missing: Checker)
                self._problem(ln)
                ln.why = ""
            self._judge(ln, replica)
            if ln.why:
                self._problem(ln)
            if ln.record["kind"] == "key":
                continue  # (feed metadata, applied here: never part of the state)
            if ln.status == feed_mod.VERIFIED or ln.status == feed_mod.UNVERIFIED and not \
                    ln.why and (self.policy == "warn" or ln.record["kind"] in MARKERS):
                out.append((ln.record, ln.raw.decode(), path, ln.line))
        return out

    def _judge(self, ln: feed_mod.Line, replica: str) -> None:
        """Bindings, sender and duplicate checks: ``ln.status`` and ``ln.why`` say the verdict."""
        r = ln.record
        if ln.status == feed_mod.VERIFIED:
            why = self._bound(r, replica)
            if why is not None:
                ln.status, ln.why = feed_mod.FORGED, why
            elif r["kind"] == "key":
                self._binding_record(ln)
        elif ln.status == feed_mod.UNVERIFIED:
            why = self._unsigned(r, replica)
            if why is not None:
                ln.why = why  # (unverified, never forged: it waits, whatever the policy)
            elif self.policy == "require" and r["kind"] not in MARKERS:
                ln.why = "unsigned: under security.signatures 'require' only verified records fold"
        if ln.status == feed_mod.FORGED:
            return
        if r["kind"] == "message" and r["from"] != r["actor"]:
            ln.status = feed_mod.FORGED
            ln.why = f"its sender {r['from']!r} is not the identity that wrote it ({r['actor']})"

    def _bound(self, r: dict, replica: str) -> str | None:
        """First use binds, and within one fold the earliest claim by (clock, id) wins
        whatever order segments are read in: a fresh clone decides as a clone that saw
        the claims arrive one by one. A binding from an earlier fold never moves."""
        actor, claim = r["actor"], (r["clock"], r["id"])
        if not self.bindings.known(actor):
            self._first[actor] = claim
            self._claims[actor] = (claim, replica)
        elif actor in self._first and replica not in self.bindings.bound(actor) and \
                claim < self._first[actor] and self.bindings.how(actor) == "first use":
            self.bindings.agents.pop(actor)  # an earlier claim: it binds, and we fold again
            self._first[actor] = claim
            self._claims[actor] = (claim, replica)
            self.rebound = True
        return self.bindings.check(actor, replica)

    def seen(self, record_id: str) -> bool:
        return feeds_index.has_record(self._index, record_id)

    def _unsigned(self, record: dict, replica: str) -> str | None:
        """An unsigned record claiming an identity bound to other replicas waits (shown
        ``unverified`` by ``bd doctor``, not folded) whether or not its own folder signs:
        anyone can write one. Records written before signing by another clone of the
        same identity fold once that replica is trusted (``bd agent trust``)."""
        bound = self.bindings.bound(record["actor"])
        if bound and replica not in bound:
            return (f"unsigned, claiming {record['actor']} (bound to {', '.join(bound)}) from "
                    f"replica {replica}: not folded; if it is theirs, run 'bd agent trust "
                    f"{record['actor']} --add {replica}'")
        return None

    def _binding_record(self, ln: feed_mod.Line) -> None:
        """``key`` records that bind or revoke: applied when their writer may: a replica
        already bound to the agent (now), or a manager (checked when the fold is complete,
        ``close``, since a build folds the roster last). A change folds everything again
        (``refold``), so every record is judged under the same bindings whatever order
        the segments were read in."""
        record = ln.record
        op, agent, target = record.get("op"), record.get("agent"), record.get("target")
        if op not in ("bind", "revoke") or not agent or not target:
            return
        self.saw_binding = True
        if record["replica"] in self.bindings.bound(agent):
            self._apply(record)
        else:
            self._pending.append(ln)

    def _apply(self, record: dict) -> None:
        agent, target = record["agent"], record["target"]
        if record["op"] == "bind":
            changed = self.bindings.add(agent, target,
                                        f"bound by {record['actor']} ({record['id']})")
        else:
            changed = self.bindings.revoke(agent, target)
        self.rebound |= changed

    def _apply_pending(self) -> None:
        for ln in self._pending:  # (a registered manager as of the record, not now)
            record = ln.record
            if feeds_index.is_manager(self._index.conn, record["actor"], record["clock"],
                                      record["id"], registered=True):
                self._apply(record)
            else:
                ln.status = feed_mod.FORGED
                ln.why = (f"{record['actor']} may not {record['op']} {record['agent']} for "
                          f"replica {record['target']}: neither bound to {record['agent']} nor "
                          "a registered manager; not applied")
                self._problem(ln)
        self._pending = []

    def _problem(self, ln: feed_mod.Line) -> None:
        r = ln.record
        self.problems.append((ln.path, ln.line, r.get("replica"), r.get("seq"), r.get("id"),
                              r.get("actor"), "broken" if ln.status == feed_mod.VERIFIED
                              else ln.status, ln.why,
                              ln.raw[:500].decode("utf-8", "replace"), self._ref))

    def close(self) -> None:
        conn = self._index.conn
        self._apply_pending()
        feeds_index.add_problems(conn, self.problems)
        self.problems = []
        feeds_index.save(conn, [(f.replica, f.key, f.seq, f.hash) for r, f in
                                self.checker.feeds.items() if r in self.checker.changed])
        self.checker.changed.clear()
        feeds_index.add_stood(conn, self.checker.new_stood)
        self.checker.new_stood = []
        self.cache.save()
        learned = {r: self.checker.seen[r] for r in self.checker.learned}
        if self.part:  # only forks and keys found here are noted; bindings are the builder's
            feeds_index.add_claims(conn, [(a, c[0], c[1], r) for a, (c, r) in
                                          self._claims.items()])
            if self.checker.new_fork or self.rebound or learned:
                fresh = bindings_mod.Bindings(self.bindings.path)
                fresh.forks.update(self.checker.forks)
                fresh.learn(learned)  # (the builder's save keeps them: ``Bindings.save``)
                fresh.dirty = True
                fresh.save()
            return
        if self.checker.new_fork or self.rebound or learned:
            self.bindings.dirty = True
        self.bindings.save()

    @property
    def refold(self) -> bool:
        """A fork was found: the branch folded before it must go too (``Workspace``
        rebuilds the index; the fork is remembered, so the rebuild refuses both)."""
        return self.checker.new_fork or self.rebound
