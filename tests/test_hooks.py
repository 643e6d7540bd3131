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
    assert result.code == 0 and time.monotonic() - started < 10
    assert "timed out after 0.5s" in result.err
    child = int((store / "child.pid").read_text())
    deadline = time.monotonic() + 5
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
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not typed.read_text():
            time.sleep(0.05)
        lines = typed.read_text().splitlines()
        assert lines == [f"[bd] URGENT mail {mid} from boss: Prod down (read it with: "
                         f"bd mail read {mid})"]
    finally:
        subprocess.run(["tmux", "kill-server"], env=full, capture_output=True)
