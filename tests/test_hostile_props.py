"""Hostile trees and lines nobody listed: a Hypothesis strategy, pushed or fetched.

``changes`` builds a few changes to the attacker's ``beadsmail`` branch at random:
entries of any mode (file, executable, symlink, gitlink, a tree where a file
belongs) at names of any bytes git accepts, in the attacker's directory, the
victim's or one of its own; lines that are valid records with fields changed
(another replica, a victim's id, an integer out of range, control characters,
extra members of any JSON value), JSON nested deep, bytes that are not UTF-8,
lines without their newline; appends, rewrites, removals, a new root history.
Each example is published through the bare remote (``git push --force``, then
``bd sync``) or left for a plain ``git fetch``; then commands run on the victim:
none may exit non-zero or print a traceback, and every record the victim held
stays readable. The default suite tries a few examples; ``-m torture`` many more.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import hostile
import pytest
from conftest import run_bd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_hostile import attacker_of, network, publish, template  # noqa: F401 (a fixture)

# -- the strategy --------------------------------------------------------------------------

_NAME_BYTES = bytes(b for b in range(1, 256) if b not in b"/\n\\")
names = st.binary(min_size=1, max_size=16).map(
    lambda b: bytes(c for c in b if c in _NAME_BYTES) or b"x").filter(
    lambda b: b.lower().strip(b". ") not in (b"", b".git", b"git~1"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3), max_leaves=8)
fields = st.fixed_dictionaries({}, optional={
    "id": st.sampled_from(["victim", "attacker", "new"]),
    "replica": st.sampled_from(["victim", "attacker", "other"]),
    "clock": st.integers(-(2**64), 2**64),
    "subject": st.text(max_size=40),
    "to": st.lists(st.text(max_size=8), max_size=3),
    "kind": st.sampled_from(["message", "receipt", "task", "agent", "compaction", "x"]),
    "extra": json_values,
})
lines = st.one_of(
    st.tuples(st.just("record"), fields),
    st.tuples(st.just("raw"), st.binary(max_size=200)),
    st.tuples(st.just("deep"), st.integers(1, 5000)),
)
places = st.sampled_from(["attacker", "victim", "other"])
modes = st.sampled_from([0o100644, 0o100644, 0o100755, 0o120000, 0o160000, "tree"])
segment_names = st.one_of(st.sampled_from(["existing", "new"]), names)
changes = st.lists(st.one_of(
    st.tuples(st.just("append"), places, st.lists(lines, min_size=1, max_size=4)),
    st.tuples(st.just("put"), places, segment_names, modes,
              st.lists(lines, max_size=4), st.booleans()),
    st.tuples(st.just("remove"), places),
    st.tuples(st.just("top"), names, modes),
), min_size=1, max_size=4)
roots = st.booleans()

# -- making it ---------------------------------------------------------------------------


def _line(a: hostile.Attacker, spec: tuple, victim_ids: list[str], own: str) -> bytes:
    what, value = spec
    if what == "raw":
        return value.replace(b"\n", b" ")
    if what == "deep":
        return b'{"a":' * value + b"0" + b"}" * value
    given_fields = dict(value)
    extra = given_fields.pop("extra", None)
    ids = {"victim": victim_ids[0], "attacker": victim_ids[-1], "new": "bd-zzzzzzzzzzzzq"}
    if "id" in given_fields:
        given_fields["id"] = ids[given_fields["id"]]
    if "replica" in given_fields:
        given_fields["replica"] = {"victim": a.victim, "attacker": a.own,
                                   "other": "zzzzzzzzzzzz"}[given_fields["replica"]]
    base = json.loads(own)
    base.update(given_fields)
    if extra is not None:
        base["extra"] = extra
    return json.dumps(base, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _replica(a: hostile.Attacker, place: str) -> str | bytes:
    return {"attacker": a.own, "victim": a.victim, "other": "zzzzzzzzzzzy"}[place]


def make(a: hostile.Attacker, ops: list[tuple], new_root: bool, ids: list[str]) -> None:
    """Apply the changes to the attacker's branch (a new root: on nothing) and commit."""
    a.changes = []
    own = a.read(f"log/{a.own}/{a.segments(a.own)[0]}").split(b"\n")[0]
    a.parent = None if new_root else "beadsmail"
    if new_root:
        a.put("store.json", b'{"format":"beadsmail","v":1}\n')
    for op in ops:
        kind, rest = op[0], op[1:]
        if kind == "append":
            place, specs = rest
            replica = _replica(a, place)
            body = b"".join(_line(a, s, ids, own) + b"\n" for s in specs)
            if a.segments(replica) and not new_root:
                a.append(body.rstrip(b"\n"), replica)
            else:
                a.put(f"log/{replica}/{hostile.DAY}-001.jsonl", body)
        elif kind == "put":
            place, name, mode, specs, newline = rest
            replica = _replica(a, place)
            existing = a.segments(replica)
            if name == "existing":
                name = (existing[0] if existing else f"{hostile.DAY}-002.jsonl").encode()
            elif name == "new":
                name = f"{hostile.DAY}-003.jsonl".encode()
            path = f"log/{replica}/".encode() + name
            body = b"\n".join(_line(a, s, ids, own) for s in specs) + (b"\n" if newline else b"")
            if mode == "tree":
                a.put(path + b"/inner", body)
            elif mode == 0o160000:
                a.put(path, mode=mode, sha="3" * 40)
            else:
                a.put(path, body, mode=mode)
        elif kind == "remove" and not new_root:
            a.remove(f"log/{_replica(a, rest[0])}")
        elif kind == "top":
            name, mode = rest
            if mode in ("tree", 0o160000):
                mode = 0o100644
            a.put(b"log/" + name if mode != 0o120000 else name, b"x\n", mode=mode)
    try:
        a.commit()
    except subprocess.CalledProcessError:  # (a name git itself refuses to put in a tree)
        assume(False)


# -- the property -----------------------------------------------------------------------

COMMANDS = [
    ("mail", "inbox", "--identity", "bob", "--json"),
    ("mail", "send", "bob", "-s", "after", "-m", "x", "--identity", "alice", "--json"),
    ("sync", "origin", "--json"),
    ("doctor", "--json"),
    ("index", "rebuild", "--json"),
    ("mail", "inbox", "--identity", "bob"),
    ("status", "--json"),
]


def survives(victim: Path, ids: list[str], commands=COMMANDS) -> list[str]:
    """Run the commands; the failures (a non-zero exit, a traceback, a record the victim
    held that can no longer be shown)."""
    failures = []
    for args in commands:
        result = run_bd(victim, *args)
        text = result.out + result.err
        if result.code != 0 or "Traceback" in text or "internal error" in text:
            failures.append(f"bd {' '.join(args)} -> {result.code}: {text[-400:]}")
    for rid in ids:
        if run_bd(victim, "show", rid, "--json").code != 0:
            failures.append(f"record {rid} lost")
    return failures


def _check(template: Path, ops: list[tuple], new_root: bool, how: str) -> None:  # noqa: F811
    with tempfile.TemporaryDirectory(prefix="beadsmail-hostile-") as tmp:
        victim, attacker, ids = network(template, Path(tmp) / "net")
        make(attacker_of(victim, attacker, ids), ops, new_root, ids)
        publish(victim, attacker, how)
        assert survives(victim, ids) == []


FAST = settings(max_examples=3, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@FAST
@given(ops=changes, new_root=roots, how=st.sampled_from(["push", "fetch"]))
def test_any_hostile_tree_leaves_every_command_working(template: Path, ops, new_root,  # noqa: F811
                                                       how) -> None:
    _check(template, ops, new_root, how)


@pytest.mark.torture
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=changes, new_root=roots, how=st.sampled_from(["push", "fetch"]))
def test_many_hostile_trees_leave_every_command_working(template: Path, ops, new_root,  # noqa: F811
                                                        how) -> None:
    _check(template, ops, new_root, how)


@pytest.mark.parametrize("how", ["push", "fetch"])
def test_lines_appended_to_the_victims_own_segment(template: Path, how: str) -> None:  # noqa: F811
    """Found by the strategy: another history appends a copy of one of the victim's own
    records (changed) and a new record to a segment of the victim's own directory."""
    _check(template, [("append", "victim", [("record", {"id": "victim", "extra": True}),
                                            ("record", {})])], False, how)
