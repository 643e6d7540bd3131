"""The hostile-remote suite: what a collaborator with push access can do to a clone.

Each class of hostile change (``tests/hostile.py``) is made by a second clone with
git plumbing and reaches the victim in two ways: pushed through the shared bare
remote and brought in by ``bd sync``, or left in the attacker's repository and
fetched with a plain ``git fetch``. Then every command runs on the victim: each
exits 0, none prints a traceback or an internal error, and no record the victim
held is lost (also after ``bd index rebuild``). A running ``bd serve`` keeps
answering throughout. Peak memory with a 200 MB hostile blob stays bounded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import faults
import hostile
import pytest
from conftest import git, make_repo, run_bd

VICTIM_CMDS = [
    ("mail", "inbox", "--identity", "bob", "--json"),
    ("mail", "send", "bob", "-s", "after", "-m", "x", "--identity", "alice", "--json"),
    ("mail", "read", "{first}", "--identity", "bob", "--json"),
    ("sync", "origin", "--json"),
    ("doctor", "--json"),
    ("doctor", "--fix", "--json"),
    ("index", "rebuild", "--json"),
    ("where", "--json"),
    ("status", "--json"),
    ("mail", "inbox", "--identity", "bob"),
    ("doctor",),
]


def send(repo: Path, sender: str, subject: str) -> str:
    result = run_bd(repo, "mail", "send", "bob", "-s", subject, "-m", "hi", "--identity", sender,
                    "--json")
    assert result.code == 0, result.err
    return result.json()["id"]


def replica(repo: Path) -> str:
    return (repo / ".git" / "beadsmail" / "replica").read_text().strip()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """victim and attacker, both syncing through one bare remote; each has sent mail."""
    root = tmp_path_factory.mktemp("hostile")
    victim = make_repo(root / "victim")
    assert run_bd(victim, "init").code == 0
    subprocess.run(["git", "init", "-q", "--bare", str(root / "origin.git")], check=True)
    ids = [send(victim, "alice", "first"), send(victim, "alice", "second")]
    attacker = make_repo(root / "attacker")
    for repo in (victim, attacker):
        git(repo, "remote", "add", "origin", "../origin.git")
    assert run_bd(victim, "sync", "origin").code == 0
    assert run_bd(attacker, "sync", "origin").code == 0
    ids.append(send(attacker, "carol", "from the attacker, before"))
    assert run_bd(attacker, "sync", "origin").code == 0
    assert run_bd(victim, "sync", "origin").code == 0
    git(victim, "remote", "add", "evil", "../attacker")
    (root / "ids.json").write_text(json.dumps(ids))
    return root


def network(template: Path, where: Path) -> tuple[Path, Path, list[str]]:
    shutil.copytree(template, where, symlinks=True)
    return where / "victim", where / "attacker", json.loads((where / "ids.json").read_text())


def attacker_of(victim: Path, attacker: Path, ids: list[str]) -> hostile.Attacker:
    return hostile.Attacker(attacker, replica(victim), replica(attacker), ids[:2])


def publish(victim: Path, attacker: Path, how: str) -> None:
    if how == "push":
        git(attacker, "push", "-q", "--force", "origin", "beadsmail")
    else:
        git(victim, "fetch", "-q", "evil")  # plain git, default refspec


def _failed_part(text: str) -> str:
    """The failed checks of a doctor report (else the output's end)."""
    try:
        data = json.loads(text)
        return json.dumps([[c for c in data["checks"] if not c["ok"]],
                           [(b["path"], b["line"], b["error"]) for b in data["bad_lines"]]])
    except (ValueError, KeyError, TypeError):
        return text[-500:]


def check_every_command(victim: Path, ids: list[str]) -> list[str]:
    """Run every command; return the failures (empty: all exit 0, no traceback)."""
    failures = []
    for cmd in VICTIM_CMDS:
        args = [a.format(first=ids[0]) for a in cmd]
        result = run_bd(victim, *args)
        text = result.out + result.err
        if result.code != 0 or "Traceback" in text or "internal error" in text:
            failures.append(f"bd {' '.join(args)} -> {result.code}: {_failed_part(text)}")
    inbox = run_bd(victim, "mail", "inbox", "--identity", "bob", "--json", "--limit", "0")
    held = {m["id"] for m in inbox.json()} if inbox.code == 0 else set()
    failures += [f"record {i} lost" for i in ids if i not in held]
    return failures


@pytest.mark.parametrize("how", ["push", "fetch"])
@pytest.mark.parametrize("case", sorted(hostile.CASES))
def test_every_command_survives_each_hostile_change(template: Path, tmp_path: Path, case: str,
                                                    how: str) -> None:
    victim, attacker, ids = network(template, tmp_path / "net")
    if case == "many_entries":
        faults.configure(victim, "boundary", tree_entries=30)
    hostile.apply(attacker_of(victim, attacker, ids), case)
    publish(victim, attacker, how)
    assert check_every_command(victim, ids) == []
    doctor = run_bd(victim, "doctor", "--json").json()
    assert doctor["ok"], doctor
    assert all(c["ok"] for c in doctor["checks"]), doctor["checks"]


def test_doctor_names_each_refused_item_and_fix_sets_them_aside(template: Path,
                                                                tmp_path: Path) -> None:
    victim, attacker, ids = network(template, tmp_path / "net")
    a = attacker_of(victim, attacker, ids)
    hostile.apply(a, "modes")
    hostile.apply(a, "deep_json")
    publish(victim, attacker, "fetch")
    report = run_bd(victim, "doctor", "--json")
    assert report.code == 0
    refused = report.json()["rejected"]
    why = {(r["path"].split("/", 1)[-1], r["line"]): r["error"] for r in refused}
    assert "gitlink" in why[(f"{hostile.DAY}-500.jsonl", 0)]
    assert "symbolic link" in why[(f"{hostile.DAY}-501.jsonl", 0)]
    assert "a directory where a file belongs" in why[(f"{hostile.DAY}-502.jsonl", 0)]
    assert "a file where a directory belongs" in why[("zzzzzzzzzzzz", 0)]
    assert any("nested deeper" in e for e in why.values())
    assert all(r["ref"] == "refs/remotes/evil/beadsmail" and len(r["commit"]) == 40
               for r in refused)
    text = run_bd(victim, "doctor")
    assert text.code == 0 and f"{hostile.DAY}-500.jsonl:0 in refs/remotes/evil/beadsmail" in text.out
    history = git(victim, "rev-parse", "refs/remotes/evil/beadsmail")
    fixed = run_bd(victim, "doctor", "--fix", "--json").json()
    assert len([r for r in fixed["repairs"] if r["action"].startswith("set aside")]) == len(refused)
    again = run_bd(victim, "doctor", "--json").json()
    assert again["rejected"] == [] and len(again["set_aside"]) == len(refused)
    assert git(victim, "rev-parse", "refs/remotes/evil/beadsmail") == history  # history kept
    assert (victim / ".git" / "beadsmail" / "set-aside.json").is_file()


def refused_a_drop(sync_report: dict) -> bool:
    """Whether a sync said it kept records the other side's history dropped."""
    return any("drops records this clone holds" in w or "neither is an append" in w
               for w in sync_report["warnings"])


def test_sync_never_fast_forwards_to_a_history_that_drops_records(template: Path,
                                                                  tmp_path: Path) -> None:
    victim, attacker, ids = network(template, tmp_path / "net")
    hostile.apply(attacker_of(victim, attacker, ids), "rewrite")
    publish(victim, attacker, "push")
    before = git(victim, "rev-parse", "beadsmail").strip()
    result = run_bd(victim, "sync", "origin", "--json").json()
    assert result["action"] == "merged"
    assert refused_a_drop(result)
    parents = git(victim, "log", "-1", "--format=%P", "beadsmail").split()
    assert before in parents and len(parents) == 2
    mine = next(p for p in faults.segments(victim) if p.startswith(replica(victim) + "/"))
    assert ids[0] in git(victim, "show", f"beadsmail:.beads/log/{mine}")
    # the remote gets the records back, and the next clone to sync sees them
    assert ids[0] in git(victim, "show", f"origin/beadsmail:.beads/log/{mine}")


def test_the_owners_compaction_is_taken_and_a_forged_one_is_not(template: Path,
                                                                 tmp_path: Path) -> None:
    victim, attacker, ids = network(template, tmp_path / "net")
    # the attacker's own cleanup: a real compaction of its own segment
    closed = send(attacker, "carol", "ephemeral")
    assert run_bd(attacker, "mail", "ack", closed, "--identity", "bob").code == 0
    assert run_bd(attacker, "sync", "origin").code == 0
    assert run_bd(victim, "sync", "origin").code == 0
    forced = run_bd(attacker, "cleanup", "--ephemeral", "--force", "--json").json()
    assert forced["count"] == 1
    assert run_bd(attacker, "sync", "origin").code == 0
    result = run_bd(victim, "sync", "origin", "--json").json()
    assert not refused_a_drop(result), result
    theirs = next(p for p in faults.segments(victim) if p.startswith(replica(attacker) + "/"))
    kinds = {json.loads(line)["kind"] for line in git(
        victim, "show", f"beadsmail:.beads/log/{theirs}").splitlines() if closed in line}
    # the message itself is gone, as its owner wanted (a signed feed keeps a stub of its
    # position and hash in its place: 'dropped')
    assert kinds == {"purge", "compaction", "dropped"}
    # a compaction of the victim's own segment made by someone else is refused
    hostile.apply(attacker_of(victim, attacker, ids), "forged_compaction")
    publish(victim, attacker, "push")
    result = run_bd(victim, "sync", "origin", "--json").json()
    assert refused_a_drop(result), result
    run_bd(victim, "index", "rebuild")
    assert ids[0] in {m["id"] for m in run_bd(victim, "mail", "inbox", "--identity", "bob",
                                              "--json").json()}


def test_a_running_server_keeps_answering_through_every_hostile_push(template: Path,
                                                                     tmp_path: Path) -> None:
    import httpx

    from beadsmail.server.runner import Background
    from beadsmail.workspace import Workspace

    victim, attacker, ids = network(template, tmp_path / "net")
    a = attacker_of(victim, attacker, ids)
    ws = Workspace.open(victim)
    try:
        with Background(ws, identity="bob", projects=["proj"]) as bg:
            for case in sorted(set(hostile.CASES) - {"many_entries"}):
                hostile.apply(a, case)
                publish(victim, attacker, "push")
                assert run_bd(victim, "sync", "origin").code == 0, case
                for path in ("/api/info", "/api/inbox?agent=bob"):
                    answer = httpx.get(bg.url + path, headers={"X-Beads-Identity": "bob"},
                                       timeout=60)
                    assert answer.status_code == 200, (case, path, answer.text[:300])
                git(attacker, "fetch", "-q", "origin")
                git(attacker, "update-ref", "refs/heads/beadsmail", "origin/beadsmail")
    finally:
        ws.close()
    assert check_every_command(victim, ids) == []


PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL);"
        " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_kib(repo: Path, *args: str) -> int:
    out = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "beadsmail", *args],
                         cwd=repo, capture_output=True, text=True, env=faults.env(), check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.parametrize("megabytes", [20, pytest.param(200, marks=pytest.mark.slow)])
def test_a_huge_hostile_blob_is_never_loaded(template: Path, tmp_path: Path,
                                             megabytes: int) -> None:
    victim, attacker, ids = network(template, tmp_path / "net")
    shutil.rmtree(victim / ".git" / "beadsmail" / "index.sqlite3", ignore_errors=True)
    for leftover in (victim / ".git" / "beadsmail").glob("index*"):
        leftover.unlink()
    baseline = peak_kib(victim, "mail", "inbox", "--identity", "bob")
    a = attacker_of(victim, attacker, ids)
    a.changes = []
    big = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=attacker, check=True,
                         input=b"\n" * (megabytes << 20), capture_output=True).stdout.decode()
    # (named after the attacker's own segments: an earlier name is refused unread anyway)
    a.put(f"log/{a.own}/9999-01-01-900.jsonl", sha=big.strip())
    a.commit()
    publish(victim, attacker, "fetch")
    for leftover in (victim / ".git" / "beadsmail").glob("index*"):
        leftover.unlink()  # a full build, with the hostile blob among the segments
    peak = peak_kib(victim, "mail", "inbox", "--identity", "bob")
    print(f"peak RSS of bd mail inbox: {baseline} KiB without, {peak} KiB with a "
          f"{megabytes} MB blob")
    assert peak < baseline + 20 * 1024, (baseline, peak)
    where = run_bd(victim, "doctor", "--json").json()
    assert any("the limit is" in r["error"] for r in where["rejected"])
