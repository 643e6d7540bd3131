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
