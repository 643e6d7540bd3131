"""The long reliability runs (``make torture``): hundreds of SIGKILLed writers, some
during packing and during ``bd sync``; eight agents racing across worktrees and a
second clone; Hypothesis with many more examples. Each prints its figures (runs,
kills, records checked, failures), which docs/reliability.md quotes.

Sizes can be scaled with ``BEADS_TORTURE_SCALE`` (default 1.0) and a run replayed
with ``BEADS_TORTURE_SEED``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import faults
import pytest
import test_reliability as short
import workloads
from conftest import git, make_repo, run_bd_proc

pytestmark = pytest.mark.torture

SCALE = float(os.environ.get("BEADS_TORTURE_SCALE", "1"))


def scaled(n: float) -> int:
    return max(1, int(n * SCALE))


def report(capsys, tally: faults.Tally, name: str) -> None:
    with capsys.disabled():
        print("\n" + tally.line(name))


def _store(path: Path, **store) -> Path:
    repo = make_repo(path)
    assert run_bd_proc(repo, "init").code == 0
    faults.configure(repo, **store)
    return repo


def test_crash_loop_sends_acks_moves_and_packing(tmp_path: Path, capsys) -> None:
    repo = _store(tmp_path / "repo", pack_after=16)
    rnd = faults.rng()
    tally = faults.Tally()
    ledger = workloads.Ledger()
    workloads.create_tasks(repo, ledger, 5)
    try:
        for _ in range(scaled(4)):  # check after every round, not only at the end
            workloads.crash_loop(repo, rnd, scaled(75), tally, max_delay=0.18, ledger=ledger)
            faults.verify_store(repo, ledger.ids())
            tally.records_checked += workloads.check_ledger(repo, ledger)
    except AssertionError:
        tally.failures += 1
        raise
    finally:
        report(capsys, tally, "crash: send/ack/move/pack")
    assert tally.kills >= tally.runs // 4


def _clone(remote: Path, path: Path) -> Path:
    git(remote.parent, "clone", "-q", str(remote), str(path))
    git(path, "commit", "-q", "--allow-empty", "-m", "clone")
    return path


def test_crash_loop_during_sync(tmp_path: Path, capsys) -> None:
    a = _store(tmp_path / "a", pack_after=64)
    remote = workloads.bare_remote(a)
    # (a store publishes its feed with its first record: until then a remote has no store)
    assert run_bd_proc(a, "mail", "send", "torture-seed", "-s", "seed", "-m", "first record",
                       "--identity", "seeder").code == 0
    assert run_bd_proc(a, "sync", "origin").code == 0
    b = _clone(remote, tmp_path / "b")
    assert run_bd_proc(b, "sync", "origin").code == 0
    rnd = faults.rng()
    tally = faults.Tally()
    ledger = workloads.Ledger()
    workloads.create_tasks(a, ledger, 3)
    from_b: set[str] = set()
    try:
        for _ in range(scaled(12)):
            workloads.crash_loop(a, rnd, 10, tally, ops=("send", "sync", "sync", "move", "ack"),
                                 max_delay=0.2, remote="origin", ledger=ledger)
            sent = faults.run_killed(b, ("mail", "send", "bob", "-s", "from b", "-m", "x",
                                         "--identity", "carol", "--json"), None)
            from_b.add(sent.json()["id"])
            killed = faults.run_killed(b, ("sync", "origin", "--json"), rnd.uniform(0.03, 0.2))
            tally.runs += 1
            tally.kills += killed.killed
        for side in (a, b, a):  # converge
            done = run_bd_proc(side, "sync", "origin", "--json")
            assert done.code == 0, done.err
        everything = ledger.ids() | from_b
        live_a = faults.verify_store(a, everything, write_check=False)
        live_b = faults.verify_store(b, everything, write_check=False)
        assert live_a == live_b, "the clones did not converge"
        tally.records_checked += workloads.check_ledger(b, ledger) + len(from_b)
    except AssertionError:
        tally.failures += 1
        raise
    finally:
        report(capsys, tally, "crash: sync")


def test_eight_agents_across_worktrees(worktrees: list[Path], capsys) -> None:
    assert run_bd_proc(worktrees[0], "init").code == 0
    ledger = workloads.Ledger()
    workloads.create_tasks(worktrees[0], ledger, 3)
    tally = faults.Tally()
    try:
        out = workloads.concurrent_mix(worktrees, 40 * SCALE, sorted(ledger.tasks), seed=11)
        tally.runs = len(out.sent) + len(out.wins) + out.conflicts
        tally.records_checked = workloads.check_outcome(worktrees[0], out)
        faults.verify_store(worktrees[1], set(out.sent))
        tally.notes.append(f"conflicts={out.conflicts}")
    except AssertionError:
        tally.failures += 1
        raise
    finally:
        report(capsys, tally, "concurrency: 8 agents, 3 checkouts")
    assert out.conflicts > 0, "the movers never raced: the run proves nothing"


def test_agents_in_worktrees_and_a_second_clone_with_sync(worktrees: list[Path], capsys) -> None:
    main = worktrees[0]
    assert run_bd_proc(main, "init").code == 0
    remote = workloads.bare_remote(main)
    # (a store publishes its feed with its first record: until then a remote has no store)
    assert run_bd_proc(main, "mail", "send", "torture-seed", "-s", "seed", "-m", "first record",
                       "--identity", "seeder").code == 0
    assert run_bd_proc(main, "sync", "origin").code == 0
    other = _clone(remote, main.parent / "other")
    # Every agent of the mix acts from both clones: each identity is bound to both
    # replicas by a published trust record, as a person working from two machines does.
    keys = run_bd_proc(other, "agent", "keys", "--json")
    assert keys.code == 0, keys.err
    second = json.loads(keys.out)["replica"]
    for name in [*(f"agent-{n}" for n in range(8)), "lead"]:
        bound = run_bd_proc(main, "agent", "trust", name, "--add", second, "--publish",
                            "--identity", name)
        assert bound.code == 0, bound.err
    assert run_bd_proc(main, "sync", "origin").code == 0
    assert run_bd_proc(other, "sync", "origin").code == 0
    ledger = workloads.Ledger()
    workloads.create_tasks(main, ledger, 3)
    assert run_bd_proc(main, "sync", "origin").code == 0
    assert run_bd_proc(other, "sync", "origin").code == 0
    tally = faults.Tally()
    checkouts = [*worktrees, other]
    try:
        out = workloads.concurrent_mix(checkouts, 40 * SCALE, sorted(ledger.tasks), seed=23,
                                       sync_remote={main: "origin", other: "origin"})
        for side in (main, other, main):
            assert run_bd_proc(side, "sync", "origin").code == 0
        tally.runs = len(out.sent) + len(out.wins) + out.conflicts + out.syncs
        _check_synced_outcome(main, other, out, tally)
    except AssertionError:
        tally.failures += 1
        raise
    finally:
        report(capsys, tally, "concurrency: 8 agents, 3 worktrees + a clone, sync")


def _check_synced_outcome(main: Path, other: Path, out: workloads.Outcome,
                          tally: faults.Tally) -> None:
    """Counts are exact on both clones; raced moves may both apply locally but the fold
    picks one winner per version everywhere (the other becomes a recorded conflict)."""
    assert not out.failures, out.failures[:5]
    assert len(out.sent) == len(set(out.sent))
    live_main = faults.verify_store(main, set(out.sent), write_check=False)
    live_other = faults.verify_store(other, set(out.sent), write_check=False)
    assert live_main == live_other, "the clones did not converge"
    tally.records_checked = len(live_main["records"])
    tally.notes.append(f"syncs={out.syncs}")
    tally.records_checked += workloads.one_winner_per_version(main, out.wins)
    tally.notes.append(f"raced versions={len(out.wins) - len({w[:2] for w in out.wins})}")


def test_hostile_input_long(capsys) -> None:
    """The short suite's Hypothesis tests again, with 12 times the examples."""
    import subprocess
    import sys

    factor = 12 * SCALE
    tests = Path(short.__file__)
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider",
                           "-k", "hostile or hooks_get", "-m", "not torture"],
                          cwd=tests.parent.parent, capture_output=True, text=True,
                          env={**os.environ, "BEADS_HOSTILE_SCALE": str(factor)})
    examples = int(factor * (80 + 60 + 12))
    tally = faults.Tally(runs=examples, records_checked=examples,
                         failures=0 if proc.returncode == 0 else 1)
    report(capsys, tally, "hostile input (Hypothesis examples)")
    assert proc.returncode == 0, proc.stdout[-3000:]
