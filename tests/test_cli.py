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


# -- consistent command shapes -----------------------------------------------------------

# The options that carry a command's free text: each is also -m, as in `git commit -m`.
TEXT_OPTIONS = {"--body", "--message", "--content", "--description", "--note", "--reason",
                "--text"}


def leaf_commands() -> list[tuple[str, object]]:
    import typer.main

    from beadsmail.cli import build_app
    from beadsmail.cli.reference import _walk

    return [(" ".join(path[1:]), cmd) for path, cmd in
            _walk(typer.main.get_command(build_app()), ["bd"]) if not getattr(cmd, "commands", None)]


def _reads(cmd) -> set[str]:
    """The names a command's own function loads: locals, globals, closure cells, attributes."""
    import dis
    import inspect

    func = inspect.unwrap(cmd.callback)
    return {i.argval for i in dis.get_instructions(func)
            if i.opname.startswith("LOAD_") and isinstance(i.argval, str)}


def test_every_command_that_acts_as_someone_takes_identity() -> None:
    """A command acts as someone when it resolves an identity (``identity(...)``,
    ``identity_source(...)``, or passes its ``--identity`` on); exactly those take
    ``--identity``, and none takes it without using it."""
    wrong, acting = [], []
    for name, cmd in leaf_commands():
        names = _reads(cmd)
        flag = any("--identity" in p.opts for p in cmd.params)
        acts = "identity_" in names or bool(names & {"identity", "identity_source"})
        acting += [name] if acts else []
        if flag != acts or (flag and "identity_" not in names):
            wrong.append(f"{name}: --identity {'declared' if flag else 'missing'}, "
                         f"{'resolves' if acts else 'does not resolve'} an identity")
    assert not wrong, wrong
    assert {"task board", "task list", "mail send", "channel post", "task comment"} <= set(acting)


def test_every_text_option_is_also_dash_m() -> None:
    missing = [f"{name} {opt}" for name, cmd in leaf_commands() for p in cmd.params
               for opt in p.opts if opt in TEXT_OPTIONS and "-m" not in p.opts]
    assert not missing, missing
    texts = {name for name, cmd in leaf_commands() for p in cmd.params if "-m" in p.opts}
    assert {"mail send", "mail reply", "channel post", "task comment", "task create",
            "dlq resolve", "reserve"} <= texts


def test_dash_m_gives_the_text_everywhere(repo: Path, bd) -> None:
    me = {"BEADS_IDENTITY": "boss"}
    assert bd(repo, "init").code == 0
    task = json.loads(bd(repo, "task", "create", "--title", "t", "-m", "the description",
                         "--json", env=me).out)["task"]
    assert task["description"] == "the description"
    comment = bd(repo, "task", "comment", task["id"], "-m", "looks good", "--json", env=me)
    assert json.loads(comment.out)["comment"]["content"] == "looks good", comment.err
    assert bd(repo, "channel", "create", "ops", "-m", "deploys", env=me).code == 0
    posted = json.loads(bd(repo, "channel", "post", "ops", "-m", "at 5", "--json", env=me).out)
    assert posted["body"] == "at 5"
    edited = bd(repo, "task", "edit", task["id"], "-m", "new words", "--json", env=me)
    assert json.loads(edited.out)["task"]["description"] == "new words", edited.err


def test_task_board_and_list_take_identity_for_mine(repo: Path, bd) -> None:
    me = {"BEADS_IDENTITY": "boss"}
    assert bd(repo, "init").code == 0
    mine = json.loads(bd(repo, "task", "create", "--title", "mine", "--assign", "w1", "--json",
                         env=me).out)["task"]
    bd(repo, "task", "create", "--title", "theirs", "--assign", "w2", env=me)
    for how in (["--identity", "w1"], ["--identity=w1"]):
        listed = json.loads(bd(repo, "task", "list", "--mine", *how, "--json").out)
        assert [t["id"] for t in listed] == [mine["id"]], how
        board = json.loads(bd(repo, "task", "board", "--mine", *how, "--json").out)
        assert [t["id"] for c in board["columns"] for t in c["tasks"]] == [mine["id"]]
    both = bd(repo, "task", "board", "--mine", "--assigned", "w2", "--identity", "w1", "--json")
    assert both.code == 2 and "--mine" in json.loads(both.out)["error"]["message"]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(tmp_path: Path, flag: str) -> None:
    from importlib.metadata import version

    result = run_bd_proc(tmp_path, flag)  # anywhere: no repository needed
    assert (result.code, result.out, result.err) == (0, f"bd {version('beadsmail')}\n", "")


def test_root_help_lists_version(tmp_path: Path) -> None:
    help_text = run_bd_proc(tmp_path, "--help").out
    assert "--version" in help_text and "-V" in help_text


# -- where errors go: under --json one JSON document on stdout, else one line on stderr ---

ERRORS = [  # (arguments, exit code, error type)
    (["mail", "read", "bd-zzzzzzzz"], 1, "not_found"),          # a domain error (typer)
    (["mail", "send", "w1", "-s", "x", "-m", "x", "-p", "9"], 1, "invalid_input"),  # typer-free
    (["task", "list", "--limit", "x"], 2, "usage"),             # a usage error
    (["mail", "inbox", "--no-such-option"], 2, "usage"),
    (["task", "status", "bd-zzzzzzzz", "done"], 2, "usage"),    # a missing required option
]


@pytest.mark.parametrize(("args", "code", "kind"), ERRORS)
def test_errors_are_json_on_stdout_under_json_else_one_line_on_stderr(
        repo: Path, bd, args: list[str], code: int, kind: str) -> None:
    assert bd(repo, "init").code == 0
    as_json = bd(repo, *args, "--json", env={"BEADS_IDENTITY": "w1"})
    assert as_json.code == code and as_json.err == "", as_json
    assert json.loads(as_json.out)["error"]["type"] == kind
    assert as_json.out.count("\n") == 1  # exactly one document, one line
    text = bd(repo, *args, env={"BEADS_IDENTITY": "w1"})
    assert text.code == code and text.out == "", text
    assert len(text.err.splitlines()) == 1 and text.err.startswith(("error: ", "usage"))


def test_the_docs_say_where_errors_go() -> None:
    root = Path(__file__).parent.parent
    for doc in ("README.md", "docs/cli.md", "docs/agents.md", "docs/mail.md"):
        text = " ".join((root / doc).read_text("utf-8").split())
        assert "JSON error object on stdout" in text, doc
