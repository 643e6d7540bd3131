"""Waking agents: ``inbox --wait``, ``watch``, ``check`` and per-session seen marks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GIT_ENV

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(repo: Path, bd) -> Path:
    assert bd(repo, "init").code == 0
    return repo


def spawn(cwd: Path, *args: str, identity: str) -> subprocess.Popen:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("BEADS_")}
    env.update(GIT_ENV, BEADS_IDENTITY=identity)
    return subprocess.Popen([sys.executable, "-m", "beadsmail", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def started(proc: subprocess.Popen, seconds: float = 0.6) -> None:
    """Give a child time to start polling (it must still be waiting afterwards). Should it
    start later, the mail is there when it looks and it returns at once: the same result."""
    time.sleep(seconds)
    assert proc.poll() is None, proc.communicate()


def test_wait_returns_when_another_worktree_sends(worktrees: list[Path], bd) -> None:
    main, wt1, wt2 = worktrees
    assert bd(main, "init").code == 0
    waiter = spawn(wt1, "mail", "inbox", "--wait", "300", "--json", identity="worker-1")
    started(waiter)
    sent = bd(wt2, "mail", "send", "worker-1", "-s", "Wake up", "-m", "x", "--identity", "boss",
              "--json").json()
    out, err = waiter.communicate(timeout=600)  # a waiter that never woke returns [] at 300 s
    assert waiter.returncode == 0, err
    assert [m["id"] for m in json.loads(out)] == [sent["id"]]


def test_wait_timeout_is_an_empty_result_and_exit_zero(store: Path, bd) -> None:
    started_at = time.monotonic()
    result = bd(store, "mail", "inbox", "--wait", "0.3", "--json", "--identity", "idle")
    assert result.code == 0 and result.json() == []
    assert 0.3 <= time.monotonic() - started_at < 120
    text = bd(store, "mail", "inbox", "--wait", "0.1", "--identity", "idle")
    assert text.code == 0 and text.out.strip() == "No messages for idle (waited 0.1s)."
    assert bd(store, "mail", "inbox", "--wait", "-1", "--identity", "idle").code == 1


def test_wait_returns_at_once_when_mail_is_there_and_session_waits_for_new(store: Path, bd) -> None:
    first = bd(store, "mail", "send", "w1", "-s", "one", "-m", "x", "--identity", "a",
               "--json").json()
    started_at = time.monotonic()
    got = bd(store, "mail", "inbox", "--wait", "600", "--json", "--session", "s1",
             "--identity", "w1")
    assert [m["id"] for m in got.json()] == [first["id"]] and time.monotonic() - started_at < 300
    again = bd(store, "mail", "inbox", "--wait", "0.2", "--json", "--session", "s1",
               "--identity", "w1")
    assert again.json() == []  # everything there was already shown to this session


def test_check_notices_once_per_session(store: Path, bd) -> None:
    def check(*args: str) -> str:
        result = bd(store, "mail", "check", *args, env={"BEADS_IDENTITY": "w1"})
        assert result.code == 0 and result.err == "", result.err
        return result.out

    assert check() == "" and check("--session", "s1") == ""
    sent = bd(store, "mail", "send", "w1", "-s", "Review bd-12", "-m", "x", "--urgent",
              "--identity", "lead", "--json").json()
    notice = check("--session", "s1")
    assert notice.count("\n") == 1 and "1 new message for w1 (1 urgent)" in notice
    assert '[URGENT] "Review bd-12" from lead' in notice and sent["id"][:7] in notice
    assert check("--session", "s1") == ""  # never repeats within a session
    assert check() == notice  # without a session it reminds until read
    data = json.loads(check("--session", "s2", "--json"))
    assert data["new"] == 1 and data["urgent"] == 1 and data["messages"][0]["id"] == sent["id"]
    bd(store, "index", "rebuild")
    assert check("--session", "s2") == ""  # marks survive an index rebuild
    bd(store, "mail", "inbox", "--session", "s3", "--identity", "w1")
    assert check("--session", "s3") == ""  # the inbox showed it to s3 already
    bd(store, "mail", "read", sent["id"], "--identity", "w1")
    assert check() == ""  # read: nothing unread any more


def test_check_session_from_environment_and_claude_hook(store: Path, bd) -> None:
    bd(store, "mail", "send", "w1", "-s", "hello", "-m", "x", "--identity", "a")
    env = {"BEADS_IDENTITY": "w1", "BEADS_SESSION": "env-s"}
    assert bd(store, "mail", "check", env=env).out != ""
    assert bd(store, "mail", "check", env=env).out == ""
    event = json.dumps({"session_id": "claude-1", "hook_event_name": "PostToolUse"})
    hook = bd(store, "mail", "check", "--claude", input=event, env={"BEADS_IDENTITY": "w1"})
    reply = json.loads(hook.out)["hookSpecificOutput"]
    assert reply["hookEventName"] == "PostToolUse" and '"hello" from a' in reply["additionalContext"]
    assert bd(store, "mail", "check", "--claude", input=event, env={"BEADS_IDENTITY": "w1"}).out == ""


def test_check_always_exits_zero(tmp_path: Path, store: Path, bd) -> None:
    outside = bd(tmp_path, "mail", "check", env={"BEADS_IDENTITY": "w1"})
    assert (outside.code, outside.out, outside.err) == (0, "", "")
    bad = bd(store, "mail", "check", "--identity", "a/b")
    assert bad.code == 0 and bad.out == "" and "invalid identity" in bad.err
    usage = bd(store, "mail", "check", "--bogus")
    assert usage.code == 2  # unknown options are usage errors from the full CLI
    assert bd(store, "mail", "check", "--help").code == 0


def test_check_runs_without_importing_typer(store: Path) -> None:
    code = ("import sys\nfrom beadsmail.cli import main\ntry:\n    main(['mail', 'check', "
            "'--identity', 'w1', '--json'])\nexcept SystemExit as e:\n    "
            "print(e.code, 'typer' in sys.modules, 'dulwich' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=store, capture_output=True, text=True)
    assert proc.stderr.split() == ["0", "False", "False"], proc.stderr
    assert json.loads(proc.stdout)["new"] == 0


def test_watch_streams_new_mail_as_json_lines(store: Path, bd) -> None:
    bd(store, "mail", "send", "w1", "-s", "before", "-m", "x", "--identity", "a")
    watcher = spawn(store, "mail", "watch", "--json", "--timeout", "600", identity="w1")
    assert watcher.stderr.readline() == "watching for new mail to w1\n"  # mail from now on is new
    ids = [bd(store, "mail", "send", "w1", "-s", f"new {i}", "-m", "x", "--identity", "a",
              "--json").json()["id"] for i in range(2)]
    bd(store, "mail", "send", "w2", "-s", "not for w1", "-m", "x", "--identity", "a")
    lines = [watcher.stdout.readline() for _ in ids]
    watcher.kill()
    watcher.communicate()
    assert [json.loads(line)["id"] for line in lines] == ids
