"""The message-bus skill (seeds 004): its shell blocks and monitor code, run as written.

The scripts are called by the paths the document uses,
``.claude/scripts/message-bus/mb-*``, which ``mb-init`` creates; the very first
``mb-init`` is therefore the installed command (the document's first line needs
the script it is about to create), after which every line runs as printed.
Lines that cannot run as printed say why where they are adapted.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from shell import BIN, js, ok, sh

INIT = ".claude/scripts/message-bus/mb-init"
SEND = """.claude/scripts/message-bus/mb-send orch-epic4 guidance \\
    '{"subject":"Priority shift","body":"Focus on API endpoints first"}'"""
SEND_URGENT = """.claude/scripts/message-bus/mb-send orch-epic4 urgent \\
    '{"subject":"Stop work","body":"Regression detected"}' --urgent"""
BROADCAST = """.claude/scripts/message-bus/mb-send --broadcast announcement \\
    '{"subject":"Policy update","body":"All commits require passing tests"}'"""
RECV = ".claude/scripts/message-bus/mb-recv"
RECV_PEEK = ".claude/scripts/message-bus/mb-recv --peek"
RECV_JSON = ".claude/scripts/message-bus/mb-recv --json"
# The document's register block puts "# ..." comments after the line-continuing
# backslashes: in sh the backslash then escapes a space and the comment ends the
# command, so the block cannot run as printed. This is the same command without them.
REGISTER = """.claude/scripts/message-bus/mb-register \\
    "orch-epic4" \\
    "orch-epic4" \\
    "Epic 4 Orchestrator" \\
    --initiative="epic4" \\
    --worktree="/path/to/worktree\""""
UNREGISTER = '.claude/scripts/message-bus/mb-unregister "orch-epic4"'
LIST = ".claude/scripts/message-bus/mb-list"
LIST_ALL = ".claude/scripts/message-bus/mb-list --all"
LIST_JSON = ".claude/scripts/message-bus/mb-list --json"
SYSTEM3 = """# Initialize (if needed)
.claude/scripts/message-bus/mb-init

# Register System 3
.claude/scripts/message-bus/mb-register "system3" "main" "System 3 Meta-Orchestrator"

# Check status
.claude/scripts/message-bus/mb-status"""
COMPLETION = """.claude/scripts/message-bus/mb-send "system3" "completion" '{
    "subject": "Epic 4 Complete",
    "body": "All tasks closed, tests passing",
    "context": {"initiative": "epic-4", "test_results": "42 passed"}
}'"""
SESSION_END = '.claude/scripts/message-bus/mb-unregister "${CLAUDE_SESSION_ID}"'
STATUS = ".claude/scripts/message-bus/mb-status"
PEEK_OTHER = ".claude/scripts/message-bus/mb-recv --instance=orch-epic4 --peek"
MONITOR = """Task(
    subagent_type="general-purpose",
    model="haiku",
    run_in_background=True,
    description="Message queue monitor",
    prompt=open(".claude/skills/message-bus/monitor-prompt-template.md").read().format(
        instance_id=instance_id
    )
)"""


@pytest.fixture
def bus(worktrees: list[Path], bd) -> list[Path]:
    """System 3 in the main checkout (its session block), orch-epic4 in a worktree."""
    main, wt1, _ = worktrees
    installed = js(sh(main, "mb-init --json"))  # creates the scripts the document calls
    assert installed["created_store"] and INIT in installed["written"]
    ok(sh(main, SYSTEM3))
    ok(sh(wt1, "mb-init"))  # each worktree gets its own .claude files
    ok(sh(wt1, REGISTER, CLAUDE_SESSION_ID="orch-epic4"))
    return worktrees


def test_init_installs_the_claude_code_files(bus: list[Path]) -> None:
    main = bus[0]
    for name in ("mb-init", "mb-send", "mb-recv", "mb-register", "mb-unregister", "mb-list",
                 "mb-status"):
        assert (main / ".claude/scripts/message-bus" / name).stat().st_mode & 0o111
    assert "mb-recv" in (main / ".claude/commands/check-messages.md").read_text()
    settings = json.loads((main / ".claude/settings.json").read_text())
    commands = [h["command"] for e in settings["hooks"]["PostToolUse"] for h in e["hooks"]]
    assert commands == ["bd mail check --claude"]
    ok(sh(main, INIT))  # again: nothing duplicated
    settings = json.loads((main / ".claude/settings.json").read_text())
    assert len(settings["hooks"]["PostToolUse"]) == 1


def test_registry_register_list_unregister(bus: list[Path]) -> None:
    main, wt1, _ = bus
    rows = {r["instance_id"]: r for r in js(sh(main, LIST_JSON))}
    assert rows["orch-epic4"] | {"registered_at": None, "last_seen": None} == {
        "instance_id": "orch-epic4", "tmux_session": "orch-epic4",
        "description": "Epic 4 Orchestrator", "initiative": "epic4",
        "worktree": "/path/to/worktree", "status": "active", "liveness": "alive",
        "registered_at": None, "last_seen": None, "unread": 0, "role": "project"}
    assert rows["system3"]["tmux_session"] == "main"
    assert "Epic 4 Orchestrator" in ok(sh(main, LIST))
    ok(sh(wt1, UNREGISTER, CLAUDE_SESSION_ID="orch-epic4"))
    assert "orch-epic4" not in ok(sh(main, LIST))
    everyone = {r["instance_id"]: r for r in js(sh(main, LIST_ALL + " --json"))}
    assert everyone["orch-epic4"]["status"] == "unregistered"
    assert "orch-epic4" in ok(sh(main, LIST_ALL))


def test_send_types_priorities_and_receive(bus: list[Path], bd) -> None:
    main, wt1, _ = bus
    ok(sh(main, SEND, CLAUDE_SESSION_ID="system3"))
    ok(sh(main, SEND_URGENT, CLAUDE_SESSION_ID="system3"))
    peeked = js(sh(main, PEEK_OTHER + " --json"))
    assert [(m["type"], m["priority"], m["bd_priority"]) for m in peeked] == [
        ("guidance", 3, 1), ("urgent", 1, 0)]
    assert peeked[0]["payload"] == {"subject": "Priority shift",
                                    "body": "Focus on API endpoints first", "context": None,
                                    "action_requested": "none"}
    assert "Priority shift" in ok(sh(wt1, RECV_PEEK, CLAUDE_SESSION_ID="orch-epic4"))
    # bd sees the same mail, urgent first, with bd's priorities
    inbox = bd(wt1, "mail", "inbox", "--json", env={"CLAUDE_SESSION_ID": "orch-epic4"}).json()
    assert [(m["subject"], m["priority"]) for m in inbox] == [("Stop work", 0),
                                                              ("Priority shift", 1)]
    got = ok(sh(wt1, RECV, CLAUDE_SESSION_ID="orch-epic4"))  # receiving marks read
    assert "Stop work" in got and "Regression detected" in got
    assert js(sh(wt1, RECV_JSON, CLAUDE_SESSION_ID="orch-epic4")) == []
    assert "No pending messages." in ok(sh(wt1, RECV, CLAUDE_SESSION_ID="orch-epic4"))


def test_broadcast_reaches_every_instance_separately(bus: list[Path]) -> None:
    main, wt1, wt2 = bus
    ok(sh(wt2, "mb-init && .claude/scripts/message-bus/mb-register orch-epic5 orch-epic5 "
               "'Epic 5 Orchestrator' --initiative=epic5", CLAUDE_SESSION_ID="orch-epic5"))
    ok(sh(main, BROADCAST, CLAUDE_SESSION_ID="system3"))
    mine = js(sh(wt1, RECV_JSON, CLAUDE_SESSION_ID="orch-epic4"))
    assert [(m["type"], m["priority"], m["payload"]["subject"]) for m in mine] == [
        ("announcement", 5, "Policy update")]
    theirs = js(sh(wt2, RECV_JSON, CLAUDE_SESSION_ID="orch-epic5"))  # not consumed by epic4
    assert [m["id"] for m in theirs] == [mine[0]["id"]]
    assert js(sh(main, RECV_JSON, CLAUDE_SESSION_ID="system3")) == []  # not to its sender


def test_completion_report_and_session_end(bus: list[Path]) -> None:
    main, wt1, _ = bus
    ok(sh(wt1, COMPLETION, CLAUDE_SESSION_ID="orch-epic4"))
    got = js(sh(main, RECV_JSON, CLAUDE_SESSION_ID="system3"))
    assert [(m["sender"], m["type"], m["priority"]) for m in got] == [
        ("orch-epic4", "completion", 5)]
    assert got[0]["payload"]["context"] == {"initiative": "epic-4", "test_results": "42 passed"}
    status = js(sh(main, STATUS + " --json"))
    assert status["active"] == 2
    ok(sh(wt1, SESSION_END, CLAUDE_SESSION_ID="orch-epic4"))
    assert js(sh(main, STATUS + " --json"))["active"] == 1
    assert "1 active instance" in ok(sh(main, STATUS))


def test_bad_input(bus: list[Path]) -> None:
    main = bus[0]
    bad = sh(main, ".claude/scripts/message-bus/mb-send orch-epic4 guidance '{not json'",
             CLAUDE_SESSION_ID="system3")
    assert bad.code == 1 and "not JSON" in bad.err
    usage = sh(main, ".claude/scripts/message-bus/mb-send orch-epic4", CLAUDE_SESSION_ID="system3")
    assert usage.code == 2 and "usage: mb-send" in usage.err


def test_monitor_waits_marks_read_and_returns_the_message(bus: list[Path]) -> None:
    """The document's monitor code runs as printed (``Task`` is Claude Code's tool, here a
    stand-in that keeps its arguments); the prompt's command is then run as the monitor
    would run it, and returns when a message arrives."""
    main, wt1, _ = bus
    spawned: dict = {}

    def Task(**kwargs):  # noqa: N802 (Claude Code's tool name)
        spawned.update(kwargs)

    import os

    here = os.getcwd()
    try:
        os.chdir(wt1)
        exec(MONITOR, {"Task": Task, "instance_id": "orch-epic4"})
    finally:
        os.chdir(here)
    assert spawned["run_in_background"] is True and spawned["model"] == "haiku"
    command = next(line.strip() for line in spawned["prompt"].splitlines()
                   if line.strip().startswith("mb-recv"))
    assert command == "mb-recv --instance=orch-epic4 --wait=600"
    monitor = subprocess.Popen(["/bin/sh", "-c", f"PATH={BIN}:$PATH {command} --json"],
                               cwd=wt1, stdout=subprocess.PIPE, text=True)
    ok(sh(main, SEND, CLAUDE_SESSION_ID="system3"))
    out, _ = monitor.communicate(timeout=120)
    got = json.loads(out)
    assert [m["payload"]["subject"] for m in got] == ["Priority shift"]
    assert js(sh(wt1, RECV_JSON, CLAUDE_SESSION_ID="orch-epic4")) == []  # marked read


def test_post_tool_use_check_announces_new_mail_once(bus: list[Path]) -> None:
    main, wt1, _ = bus
    settings = json.loads((wt1 / ".claude/settings.json").read_text())
    command = settings["hooks"]["PostToolUse"][0]["hooks"][0]["command"]
    event = json.dumps({"session_id": "s-1", "hook_event_name": "PostToolUse"})
    assert sh(wt1, command, input=event, CLAUDE_SESSION_ID="orch-epic4").out.strip() == ""
    ok(sh(main, SEND_URGENT, CLAUDE_SESSION_ID="system3"))
    first = sh(wt1, command, input=event, CLAUDE_SESSION_ID="orch-epic4")
    assert "Stop work" in ok(first)
    assert sh(wt1, command, input=event, CLAUDE_SESSION_ID="orch-epic4").out.strip() == ""


def test_message_log_query_is_the_audit(bus: list[Path], bd) -> None:
    """``sqlite3 .claude/message-bus/queue.db "SELECT * FROM message_log ..."`` cannot run:
    there is no queue database, the messages are records in git. ``bd audit`` is that log."""
    main = bus[0]
    ok(sh(main, SEND, CLAUDE_SESSION_ID="system3"))
    log = bd(main, "audit", "--action", "message", "--json").json()
    assert any(e["actor"] == "system3" and e["action"] == "message.send" for e in log)


def test_every_priority_is_kept_exactly_both_ways(bus: list[Path], bd) -> None:
    """1-10 in, the same 1-10 out (and bd's 0-4 beside it); bd's 0-4 seen through the bus as
    the documented 1/3/5/7/10; a metadata value that is no bus priority is never shown."""
    main, wt1, _ = bus
    lines = [f".claude/scripts/message-bus/mb-send orch-epic4 query '{{\"subject\": \"p{k}\"}}' "
             f"--priority={k}" for k in range(1, 11)]
    ok(sh(main, " && ".join(lines), CLAUDE_SESSION_ID="system3"))
    for p in range(5):
        assert bd(main, "mail", "send", "orch-epic4", "-s", f"bd{p}", "-m", "x", "--priority",
                  str(p), "--identity", "system3").code == 0
    assert bd(main, "mail", "send", "orch-epic4", "-s", "odd", "-m", "x", "--priority", "2",
              "--metadata", '{"mb_priority": "high"}', "--identity", "system3").code == 0
    got = {m["payload"]["subject"]: (m["priority"], m["bd_priority"])
           for m in js(sh(wt1, RECV_JSON, CLAUDE_SESSION_ID="orch-epic4"))}
    assert {k: got[f"p{k}"][0] for k in range(1, 11)} == {k: k for k in range(1, 11)}
    assert [got[f"p{k}"][1] for k in range(1, 11)] == [0, 1, 1, 2, 2, 3, 3, 3, 4, 4]
    assert [got[f"bd{p}"] for p in range(5)] == [(1, 0), (3, 1), (5, 2), (7, 3), (10, 4)]
    assert got["odd"] == (5, 2)
    unread = bd(wt1, "mail", "inbox", "--unread", "--json", "--identity", "orch-epic4").json()
    assert unread == []  # mb-recv marked them read


def test_list_shows_active_instances_and_their_details(bus: list[Path], bd) -> None:
    """``mb-list`` without ``--all``: active instances only (a stopped one is left out);
    the details ``mb-register`` took are stored and shown, by mb-list and by bd."""
    main, wt1, _ = bus
    assert bd(main, "agent", "status", "system3", "stopped", "--identity", "system3").code == 0
    listed = ok(sh(main, LIST))
    assert "system3" not in listed and "/path/to/worktree" in listed and "epic4" in listed
    assert "system3" in ok(sh(main, LIST_ALL))
    shown = bd(wt1, "agent", "show", "orch-epic4")
    assert shown.code == 0 and "initiative epic4" in shown.out
    assert "worktree /path/to/worktree" in shown.out and "tmux_session orch-epic4" in shown.out
