"""The ``bd`` process itself: exit codes, and output through pipes after a quick exit.

Typer-free commands end with ``os._exit`` once their output is flushed (``cli.run``),
so these run real processes: nothing printed may be lost, and the codes must hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GIT_ENV, Result
from helpers import message_fields

from beadsmail.workspace import Workspace


def env() -> dict[str, str]:
    """As a user runs it: output buffered (not PYTHONUNBUFFERED), so a lost flush shows."""
    out = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONUNBUFFERED", "BEADS_IDENTITY", "BEADS_SESSION")}
    return {**out, **GIT_ENV}


def run_bd_proc(cwd: Path, *args: str) -> Result:
    proc = subprocess.run([sys.executable, "-m", "beadsmail", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=60)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def store(repo: Path, bd) -> Path:
    assert bd(repo, "init").code == 0
    ws = Workspace.open(repo)
    # one commit of 400 messages: an inbox larger than a pipe's buffer
    ws.write("alice", [("message", message_fields(subject=f"message {i}", body="x" * 200))
                       for i in range(400)], "mail: alice -> bob: bulk")
    ws.close()
    return repo


def test_a_quick_exit_loses_no_output_through_a_pipe(store: Path) -> None:
    result = run_bd_proc(store, "mail", "inbox", "--identity", "bob", "--json", "--limit", "1000")
    assert result.code == 0 and result.err == ""
    assert len(json.loads(result.out)) == 400 and result.out.endswith("]\n")
    text = run_bd_proc(store, "mail", "inbox", "--identity", "bob", "--limit", "1000")
    assert text.code == 0 and text.out.count("message ") == 400 and text.out.endswith("\n")


def test_exit_codes_of_typer_free_commands(store: Path) -> None:
    refused = run_bd_proc(store, "mail", "send", "not/valid", "-s", "x", "-m", "y",
                          "--identity", "alice")
    assert refused.code == 1 and refused.out == ""
    assert refused.err.startswith("error: ") and len(refused.err.splitlines()) == 1
    usage = run_bd_proc(store, "mail", "inbox", "--bogus")
    assert usage.code == 2
    check = run_bd_proc(store, "mail", "check", "--identity", "bob", "--json")
    assert check.code == 0 and json.loads(check.out)["new"] == 400


def test_a_reader_that_leaves_early_gets_exit_141_and_no_traceback(store: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "beadsmail", "mail", "inbox", "--identity",
                             "bob", "--json", "--limit", "1000"], cwd=store,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env())
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10)
    proc.stdout.close()  # like `bd mail inbox --json | head -c 10`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert err == ""


@pytest.mark.parametrize(("error", "says"), [
    ("database is locked", "another bd process kept the index busy"),
    ("database or disk is full", "free some space"),
    ("file is not a database", "try 'bd index rebuild'"),
])
def test_index_errors_say_what_to_do(error: str, says: str, capsys) -> None:
    import sqlite3

    from beadsmail.cli.output import fail

    assert fail(sqlite3.OperationalError(error), as_json=False) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: index error: {error}") and says in err
    assert len(err.splitlines()) == 1
    assert "'bd index rebuild'" not in err or "not a database" in error  # it would not help


# -- no store: nothing is set up but by 'bd init' ------------------------------------

def every_command() -> list[list[str]]:
    """Each leaf command of ``bd`` but ``init``, with a placeholder for what it requires."""
    import typer.main

    from beadsmail.cli import build_app
    from beadsmail.cli.reference import _walk

    found = []
    for path, cmd in _walk(typer.main.get_command(build_app()), ["bd"]):
        if getattr(cmd, "commands", None) or path == ["bd", "init"]:
            continue
        words = path[1:]
        for p in (p for p in cmd.params if p.required):
            value = (p.type.choices[0] if hasattr(p.type, "choices") else
                     "1" if p.type.name in ("int", "float", "integer") else "x")
            words += [value] if p.param_type_name == "argument" else [p.opts[0], value]
        json_ = ["--json"] if any(p.name == "json_" for p in cmd.params) else []
        found.append(words + EXTRA.get(" ".join(path[1:]), []) + json_)
    return found


EXTRA = {"cleanup": ["--ephemeral", "--dry-run"], "task assign": ["--unassign"]}  # what a command needs to get going


def _state(repo: Path) -> tuple[str, list[str]]:
    from conftest import git

    return git(repo, "for-each-ref"), sorted(p.name for p in (repo / ".git").iterdir())


def test_without_a_store_every_command_but_init_says_so_and_creates_nothing(repo: Path,
                                                                               bd) -> None:
    before = _state(repo)
    commands = every_command()
    assert len(commands) > 40 and ["mail", "send", "x", "--subject", "x", "--body", "x",
                                   "--json"] in commands
    for words in commands:
        quiet = words[:2] == ["mail", "check"]  # run after every tool call: exit 0 always
        text = bd(repo, *(w for w in words if w != "--json"), env={"BEADS_IDENTITY": "w1"})
        assert text.code == (0 if quiet else 1), (words, text)
        assert quiet or (len(text.err.splitlines()) == 1 and "run 'bd init'" in text.err), text
        if "--json" in words:
            error = bd(repo, *words, env={"BEADS_IDENTITY": "w1"}).json()["error"]
            assert error["type"] == "no_store" and "run 'bd init'" in error["message"], error
    assert _state(repo) == before, "a command without a store set something up"


def test_a_clone_of_a_repository_with_a_store_works_at_once(repo: Path, bd, tmp_path: Path) -> None:
    from conftest import git

    assert bd(repo, "init").code == 0
    sent = bd(repo, "mail", "send", "w1", "-s", "hello", "-m", "x", "--identity", "a", "--json")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    inbox = bd(clone, "mail", "inbox", "--identity", "w1", "--json")
    assert [m["id"] for m in inbox.json()] == [sent.json()["id"]]
    reply = bd(clone, "mail", "reply", sent.json()["id"], "-m", "back", "--identity", "w1", "--json")
    assert reply.code == 0, reply.err
    back = bd(clone, "mail", "inbox", "--identity", "a", "--json").json()
    assert [m["id"] for m in back] == [reply.json()["id"]]
    assert git(clone, "branch", "--list", "beadsmail").strip() == "beadsmail"  # written here
