"""``.beads/hooks/on_message``: arguments, stdin, events, failures, and the shipped examples."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import git
from helpers import approve_hooks

EXAMPLES = Path(__file__).resolve().parent.parent / ".beads-example" / "hooks"


@pytest.fixture
def store(repo: Path, bd) -> Path:
    assert bd(repo, "init").code == 0
    return repo


def install(repo: Path, text: str, name: str = "on_message") -> Path:
    path = repo / ".beads" / "hooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    approve_hooks(repo)
    return path


RECORDER = """#!/bin/sh
printf '%s %s %s %s\\n' "$1" "$2" "$BEADS_EVENT" "$BEADS_RECORD_ID" >> hook-args.txt
cat > "hook-$1.json"
git rev-parse beadsmail > "hook-head-$1.txt"
"""


def test_hook_receives_id_event_and_record(store: Path, bd) -> None:
    install(store, RECORDER)
    sent = bd(store, "mail", "send", "w1", "-s", "Hello", "-m", "body", "--identity", "boss",
              "--json")
    assert sent.code == 0
    mid = sent.json()["id"]
    committed = git(store, "rev-parse", "beadsmail")
    reply = bd(store, "mail", "reply", mid, "-m", "ok", "--identity", "w1", "--json").json()
    args = (store / "hook-args.txt").read_text().splitlines()
    # argument 2 is beads' event type; the finer event is in BEADS_EVENT
    assert args == [f"{mid} message send {mid}", f"{reply['id']} message reply {reply['id']}"]
    record = json.loads((store / f"hook-{mid}.json").read_text())
    assert record["id"] == mid and record["kind"] == "message" and record["subject"] == "Hello"
    assert record["from"] == "boss" and record["to"] == ["w1"] and record["clock"] >= 1
    assert (record["type"], record["message_type"]) == ("message", "request")
    assert (record["title"], record["description"]) == ("Hello", "body")
    assert (record["assignee"], record["sender"], record["status"]) == ("w1", "boss", "open")
    assert record["replies_to"] is None and record["ephemeral"] is True and record["priority"] == 2
    replied = json.loads((store / f"hook-{reply['id']}.json").read_text())
    assert replied["replies_to"] == mid and replied["assignee"] == "boss"
    assert (store / f"hook-head-{mid}.txt").read_text() == committed  # ran after the commit
    assert git(store, "status", "--porcelain", "--", ".beads/hooks").strip() == "?? .beads/hooks/"


def test_failing_hook_is_a_warning_and_the_message_stays(store: Path, bd) -> None:
    install(store, "#!/bin/sh\necho 'cannot reach pager' >&2\nexit 3\n")
    result = bd(store, "mail", "send", "w1", "-s", "s", "-m", "b", "--identity", "a", "--json")
    assert result.code == 0
    assert "hook on_message exited 3: cannot reach pager" in result.err
    mid = result.json()["id"]
    assert bd(store, "mail", "read", mid, "--identity", "w1").code == 0


def test_hook_timeout_kills_it_and_bd_exits_zero(store: Path, bd) -> None:
    cfg = store / ".beads" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("timeout: 10", "timeout: 0.5"))
    install(store, "#!/bin/sh\nsleep 30 &\necho $! > child.pid\nwait\n")
    started = time.monotonic()
    result = bd(store, "mail", "send", "w1", "-s", "s", "-m", "b", "--identity", "a", "--json")
    assert result.code == 0 and time.monotonic() - started < 25  # the hook's child sleeps 30 s
    assert "timed out after 0.5s" in result.err
    child = int((store / "child.pid").read_text())
    deadline = time.monotonic() + 60
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)  # what the hook started was killed with it
    mid = result.json()["id"]
    listed = bd(store, "mail", "inbox", "--json", "--identity", "w1").json()
    assert [m["id"] for m in listed] == [mid]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_non_executable_hook_is_skipped_with_a_warning(store: Path, bd) -> None:
    install(store, RECORDER).chmod(0o644)
    result = bd(store, "mail", "send", "w1", "-s", "s", "-m", "b", "--identity", "a")
    assert result.code == 0 and "not executable" in result.err
    assert not (store / "hook-args.txt").exists()


def test_output_is_capped_and_a_child_holding_stderr_does_not_hold_bd(store: Path, bd) -> None:
    cfg = store / ".beads" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("timeout: 10", "timeout: 120"))
    install(store, "#!/bin/sh\nhead -c 20000000 /dev/zero | tr '\\0' x >&2\n"
                   "echo >&2; echo 'the last line' >&2\n(sleep 300; echo late >&2) &\n"
                   "echo $! > child.pid\nexit 4\n")
    started = time.monotonic()
    result = bd(store, "mail", "send", "w1", "-s", "s", "-m", "b", "--identity", "a", "--json")
    assert result.code == 0 and time.monotonic() - started < 60  # not the 300 s child
    assert "hook on_message exited 4: the last line;" in result.err
    assert len(result.err) < 2000
    os.kill(int((store / "child.pid").read_text()), 9)


def test_a_new_or_changed_hook_is_reported_once_and_runs_only_approved(store: Path, bd) -> None:
    hook = store / ".beads" / "hooks" / "on_message"
    hook.parent.mkdir(parents=True)
    hook.write_text(RECORDER)
    hook.chmod(0o755)  # as a pulled commit would put it there: not approved
    send = ("mail", "send", "w1", "-s", "s", "-m", "b", "--identity", "a")
    first = bd(store, *send)
    assert first.code == 0 and "is new and did not run" in first.err
    assert "bd hooks trust" in first.err and not (store / "hook-args.txt").exists()
    second = bd(store, *send)
    assert second.code == 0 and second.err == "" and not (store / "hook-args.txt").exists()
    status = bd(store, "hooks", "status", "--json").json()
    assert status["unapproved"] == ["on_message"] and status["approve"] == "bd hooks trust"
    assert bd(store, "hooks", "list", "--json").json()[0]["state"] == "new"
    trusted = bd(store, "hooks", "trust", "on_message", "--json").json()
    assert [a["name"] for a in trusted["approved"]] == ["on_message"]
    assert bd(store, *send).code == 0 and len((store / "hook-args.txt").read_text().splitlines()) == 1
    hook.write_text(RECORDER + "touch changed\n")
    changed = bd(store, *send)
    assert "changed since it was approved and did not run" in changed.err
    assert not (store / "changed").exists()
    assert bd(store, "hooks", "list", "--json").json()[0]["state"] == "changed"
    assert bd(store, "hooks", "trust", "nope").code == 1


def test_what_bd_init_installs_needs_no_approval(store: Path, bd) -> None:
    """``bd init`` writes ``.beads/config.yaml`` and no hook: nothing of it waits for
    approval, and the first send says nothing about approving."""
    status = bd(store, "hooks", "status", "--json").json()
    assert status["unapproved"] == [] and status["approve"] is None
    sent = bd(store, "mail", "send", "w1", "-s", "s", "-m", "b", "--identity", "a")
    assert sent.code == 0 and sent.err == ""


def test_settings_that_run_or_send_wait_for_approval(store: Path, bd, tmp_path: Path) -> None:
    cfg = store / ".beads" / "config.yaml"
    elsewhere = tmp_path / "elsewhere.git"
    git(tmp_path, "init", "-q", "--bare", str(elsewhere))
    cfg.write_text(cfg.read_text().replace("remote: origin ", f"remote: {elsewhere}")
                   .replace("auto: false", "auto: true "))
    first = bd(store, "mail", "send", "w1", "-s", "s", "-m", "b", "--identity", "a")
    assert first.code == 0 and "sync.auto, sync.remote, which are not approved" in first.err
    assert bd(store, "mail", "send", "w1", "-s", "s", "-m", "b", "--identity", "a").err == ""
    where = bd(store, "sync", "--json")  # the default remote, not the configured one
    assert where.code == 1 and "origin" in where.json()["error"]["message"]
    assert git(elsewhere, "for-each-ref").strip() == ""
    status = bd(store, "hooks", "status", "--json").json()
    assert status["settings"]["state"] == "new" and status["unapproved"] == ["config.yaml"]
    assert bd(store, "hooks", "trust").code == 0
    synced = bd(store, "sync", "--json")
    assert synced.code == 0, synced.err
    assert synced.json()["remote"] == str(elsewhere)
    assert "beadsmail" in git(elsewhere, "for-each-ref")


def test_example_notification_file_hook(store: Path, bd) -> None:
    install(store, (EXAMPLES / "on_message").read_text())
    notify = store / "notes" / "mail.log"
    sent = bd(store, "mail", "send", "w1", "-s", "Build broke", "-m", "see CI", "--identity", "ci",
              "--json", env={"BEADS_NOTIFY_FILE": str(notify)}).json()
    when, event, mid, record = notify.read_text().rstrip("\n").split("\t")
    assert event == "send" and mid == sent["id"] and when.endswith("Z")
    assert json.loads(record)["subject"] == "Build broke"
    bd(store, "mail", "send", "w1", "-s", "again", "-m", "x", "--identity", "ci")
    assert (store / ".beads" / "notifications.log").read_text().count("\tsend\t") == 1


def _tmux_env(tmp_path: Path) -> dict:
    sock = tmp_path / "tmux"
    sock.mkdir()
    return {"TMUX_TMPDIR": str(sock), "TMUX": ""}


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_example_tmux_hook_nudges_recipient_session_on_urgent_mail(store: Path, bd,
                                                                   tmp_path: Path) -> None:
    install(store, (EXAMPLES / "on_message.tmux").read_text())
    env = _tmux_env(tmp_path)
    typed = tmp_path / "typed.txt"
    full = {**os.environ, **env}
    subprocess.run(["tmux", "new-session", "-d", "-s", "worker-1", "-x", "200", "-y", "20",
                    f"cat > {typed}"], env=full, check=True)
    try:
        bd(store, "mail", "send", "worker-1", "-s", "Routine", "-m", "x", "--identity", "boss",
           env=env)
        urgent = bd(store, "mail", "send", "worker-1", "-s", "Prod down", "-m", "x", "--urgent",
                    "--identity", "boss", "--json", env=env)
        assert urgent.code == 0 and "hook" not in urgent.err
        mid = urgent.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not typed.read_text():
            time.sleep(0.05)
        lines = typed.read_text().splitlines()
        assert lines == [f"[bd] URGENT mail {mid} (read it with: bd mail read {mid})"]
    finally:
        subprocess.run(["tmux", "kill-server"], env=full, capture_output=True)


def test_example_tmux_hook_never_types_what_another_agent_wrote(store: Path, bd,
                                                                tmp_path: Path) -> None:
    """A real tmux pane running a shell: a subject crafted to run there stays mail."""
    install(store, (EXAMPLES / "on_message.tmux").read_text())
    env = _tmux_env(tmp_path)
    full = {**os.environ, **env}
    shell = tmp_path / "shell"
    shell.mkdir()
    subprocess.run(["tmux", "new-session", "-d", "-s", "worker-1", "-x", "200", "-y", "20",
                    "-c", str(shell), "sh"], env=full, check=True)

    def screen() -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", "=worker-1:"], env=full,
                              capture_output=True, text=True).stdout

    try:
        urgent = bd(store, "mail", "send", "worker-1", "-s", "x; touch PWNED #", "-m",
                    "`touch PWNED2`", "--urgent", "--identity", "boss", "--json", env=env)
        assert urgent.code == 0 and "hook" not in urgent.err, urgent.err
        mid = urgent.json()["id"]
        # as a record from another clone could be: a newline in the subject, a hostile id
        forged = {**urgent.json(), "kind": "message", "priority": 0, "to": ["worker-1"],
                  "from": "boss; touch PWNED3", "subject": "y\ntouch PWNED4 #\n"}
        for record in (forged, {**forged, "id": "bd-1; touch PWNED5 #"}):
            subprocess.run([str(store / ".beads" / "hooks" / "on_message"), record["id"], "arrive"],
                           input=json.dumps(record), text=True, env=full, check=True, cwd=store)
        deadline = time.monotonic() + 30
        while screen().count(f"bd mail read {mid}") < 2 or "bd mail inbox" not in screen():
            assert time.monotonic() < deadline, screen()
            time.sleep(0.05)
        subprocess.run(["tmux", "send-keys", "-t", "=worker-1:", "-l", "touch finished"],
                       env=full, check=True)
        subprocess.run(["tmux", "send-keys", "-t", "=worker-1:", "Enter"], env=full, check=True)
        while not (shell / "finished").exists():  # the shell has run everything typed before
            assert time.monotonic() < deadline, screen()
            time.sleep(0.05)
        assert sorted(p.name for p in shell.iterdir()) == ["finished"]
        assert "PWNED" not in screen() and "touch" not in screen().replace("touch finished", "")
    finally:
        subprocess.run(["tmux", "kill-server"], env=full, capture_output=True)


def test_odd_settings_values_are_held_not_a_crash(store: Path, bd) -> None:
    cfg = store / ".beads" / "config.yaml"
    cfg.write_text("sync:\n  remote: 2026-01-01\n  auto: [1, {a: b}]\n")
    first = bd(store, "mail", "inbox", "--identity", "w1", "--json")
    assert first.code == 0 and "not approved" in first.err
    assert bd(store, "hooks", "trust", "config.yaml").code == 0
    assert bd(store, "hooks", "status", "--json").json()["unapproved"] == []
