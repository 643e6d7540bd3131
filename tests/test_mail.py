"""Mail: send, inbox, read, ack, reply, show, cleanup, whoami, on real repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import fsck, git
from helpers import write_message

from beadsmail import mail
from beadsmail.workspace import Workspace


@pytest.fixture
def store(repo: Path, bd) -> Path:
    assert bd(repo, "init").code == 0
    return repo


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "beadsmail").strip()


def send(bd, repo: Path, sender: str, *args: str) -> dict:
    result = bd(repo, "mail", "send", *args, "--identity", sender, "--json")
    assert result.code == 0, result.err
    return result.json()


def inbox(bd, repo: Path, me: str, *args: str) -> list[dict]:
    result = bd(repo, "mail", "inbox", "--json", *args, env={"BEADS_IDENTITY": me})
    assert result.code == 0, result.err
    return result.json()


# -- send -----------------------------------------------------------------------

def test_send_defaults_urgent_and_identity_override(store: Path, bd) -> None:
    plain = send(bd, store, "manager", "worker-1", "-s", "Task complete", "-m", "Finished bd-xyz")
    assert plain["from"] == "manager" and plain["to"] == ["worker-1"]
    assert plain["priority"] == 2 and plain["type"] == "request" and plain["ephemeral"] is True
    assert plain["thread_id"] == plain["id"] and plain["replies_to"] is None
    urgent = send(bd, store, "worker-1", "manager", "-s", "Blocked!", "-m", "Need creds", "--urgent")
    assert urgent["priority"] == 0
    result = bd(store, "mail", "send", "worker-2", "-s", "Handoff", "-m", "Your turn",
                "--identity", "refinery", "--json", env={"BEADS_IDENTITY": "someone-else"})
    assert result.json()["from"] == "refinery"
    text = bd(store, "mail", "send", "worker-2", "-s", "Hi", "-m", "x", env={"BEADS_IDENTITY": "a"})
    assert text.code == 0 and text.out.startswith("Sent bd-")


def test_priority_order_and_type_defaults(store: Path, bd) -> None:
    def prio(*args: str) -> int:
        return send(bd, store, "a", "b", "-s", "s", "-m", "m", *args)["priority"]

    assert prio("--type", "guidance") == mail.TYPES["guidance"] == 1
    assert prio("--type", "heartbeat") == 4
    assert prio("--type", "heartbeat", "--urgent") == 0
    assert prio("--urgent", "--priority", "3") == 3
    assert prio("--type", "urgent") == 0
    assert prio() == 2


def test_one_message_many_recipients_with_payload(store: Path, bd) -> None:
    sent = send(bd, store, "lead", "w1", "w2", "w1", "-s", "Plan", "-m", "Read it",
                "--context", '{"task": "bd-1"}', "--metadata", '{"k": 1}', "--action", "respond",
                "--permanent", "--type", "coordination")
    assert sent["to"] == ["w1", "w2"] and sent["context"] == {"task": "bd-1"}
    assert sent["metadata"] == {"k": 1} and sent["action_requested"] == "respond"
    assert sent["ephemeral"] is False and sent["type"] == "coordination"
    ws = Workspace.open(store)
    ws.refresh()
    assert ws.index.counts()["message"] == 1
    for me in ("w1", "w2"):
        assert [m["id"] for m in inbox(bd, store, me)] == [sent["id"]]
    assert bd(store, "mail", "ack", sent["id"], "--identity", "w1").code == 0
    assert inbox(bd, store, "w1") == [] and len(inbox(bd, store, "w2")) == 1


def test_body_from_stdin(store: Path, bd) -> None:
    result = bd(store, "mail", "send", "b", "-s", "log", "-m", "-", "--identity", "a", "--json",
                input="line 1\nline 2\n")
    assert result.json()["body"] == "line 1\nline 2\n"


# -- inbox ----------------------------------------------------------------------

def test_inbox_filters_order_and_listing_never_writes(store: Path, bd) -> None:
    old = send(bd, store, "manager", "worker-1", "-s", "Old", "-m", "x", "--type", "status")
    urgent = send(bd, store, "manager", "worker-1", "-s", "Task assigned", "-m", "x", "--urgent")
    new = send(bd, store, "worker-2", "worker-1", "-s", "FYI", "-m", "x", "--reply-to", old["id"])
    send(bd, store, "manager", "someone-else", "-s", "Not mine", "-m", "x")
    before = head(store)
    listed = inbox(bd, store, "worker-1")
    assert [m["id"] for m in listed] == [urgent["id"], new["id"], old["id"]]
    assert all(m["state"] == "unread" and m["status"] == "open" for m in listed)
    assert [m["id"] for m in inbox(bd, store, "worker-1", "--from", "worker-2")] == [new["id"]]
    assert [m["id"] for m in inbox(bd, store, "worker-1", "--priority", "0")] == [urgent["id"]]
    assert [m["id"] for m in inbox(bd, store, "worker-1", "--type", "status")] == [old["id"]]
    assert len(inbox(bd, store, "worker-1", "--limit", "2")) == 2
    bd(store, "mail", "read", urgent["id"], "--identity", "worker-1")
    assert urgent["id"] not in [m["id"] for m in inbox(bd, store, "worker-1", "--unread")]
    assert head(store) != before  # the read wrote a receipt ...
    before = head(store)
    text = bd(store, "mail", "inbox", env={"BEADS_IDENTITY": "worker-1"})
    assert head(store) == before  # ... listing did not
    lines = text.out.splitlines()
    assert lines[0] == "Inbox for worker-1 (3 messages):"
    assert lines[2].startswith("  bd-") and lines[2].endswith(": Task assigned [URGENT]")
    assert lines[3] == "      From: manager (just now) [verified]"  # (signed: a visible mark)
    assert any(line.startswith("      Re: bd-") for line in lines)
    empty = bd(store, "mail", "inbox", env={"BEADS_IDENTITY": "nobody"})
    assert empty.out.strip() == "No messages for nobody."


def test_broadcast_group_and_channel_reach_others_not_sender(store: Path) -> None:
    ws = Workspace.open(store)
    ws.write("boss", [("agent", {"agent": "w1", "op": "register", "name": "W1", "role": "project",
                                 "group": "core", "tier": 2, "model": None, "status": "active"}),
                      ("membership", {"channel": "review", "agent": "w2", "op": "join"})], "setup")
    everyone = mail.send(ws, "boss", ["*"], "All hands", "Meeting")
    group = mail.send(ws, "boss", ["@core"], "Core only", "x")
    channel = mail.send(ws, "w1", ["#review"], "Please review", "x")
    ids = lambda me: {m["id"] for m in mail.inbox(ws, me)}  # noqa: E731
    assert ids("w1") == {everyone["id"], group["id"]}
    assert ids("w2") == {everyone["id"], channel["id"]}
    assert ids("boss") == set()
    assert mail.ack(ws, "w1", [everyone["id"]])["acknowledged"] == [everyone["id"]]
    assert everyone["id"] in ids("w2")  # one reader never consumes a broadcast for others


# -- read and ack ---------------------------------------------------------------

def test_read_records_receipt_without_acking_and_peek_writes_nothing(store: Path, bd) -> None:
    sent = send(bd, store, "manager", "worker-1", "-s", "Task assigned", "-m", "Please do it.")
    before = head(store)
    peek = bd(store, "mail", "read", sent["id"][:7], "--peek", "--json",
              env={"BEADS_IDENTITY": "worker-1"})
    assert peek.json()["state"] == "unread" and head(store) == before
    result = bd(store, "mail", "read", sent["id"][:7], env={"BEADS_IDENTITY": "worker-1"})
    lines = result.out.splitlines()
    assert lines[0].startswith("─") and lines[1].split() == ["ID:", sent["id"]]
    fields = dict(line.split(":", 1) for line in lines[1:9])
    assert fields["From"].strip() == "manager" and fields["Subject"].strip() == "Task assigned"
    assert fields["Priority"].strip() == "P2" and fields["Status"].strip() == "read"
    assert lines[-1] == "Please do it."
    assert any(x.split()[:3] == ["Signed:", "verified", "(replica"] for x in lines)
    again = bd(store, "mail", "read", sent["id"], "--json", env={"BEADS_IDENTITY": "worker-1"})
    data = again.json()
    assert data["state"] == "read" and data["status"] == "open" and data["read_at"]
    assert data["receipts"] == [{"recipient": "worker-1", "state": "read",
                                 "read_at": data["read_at"], "acked_at": None}]
    assert [m["id"] for m in inbox(bd, store, "worker-1")] == [sent["id"]]  # still open


def test_ack_several_ids_all_and_errors(store: Path, bd) -> None:
    ids = [send(bd, store, "manager", "worker-1", "-s", f"m{i}", "-m", "x")["id"] for i in range(4)]
    other = send(bd, store, "manager", "worker-9", "-s", "theirs", "-m", "x")["id"]
    result = bd(store, "mail", "ack", ids[0], ids[1][:8], "--json", env={"BEADS_IDENTITY": "worker-1"})
    assert result.code == 0 and result.json() == {"acknowledged": ids[:2], "errors": []}
    mixed = bd(store, "mail", "ack", ids[2], other, "bd-zzzzzzzz", "--json",
               env={"BEADS_IDENTITY": "worker-1"})
    data = mixed.json()
    assert mixed.code == 1 and data["acknowledged"] == [ids[2]]
    assert [e["id"] for e in data["errors"]] == [other, "bd-zzzzzzzz"]
    assert "not addressed to worker-1" in data["errors"][0]["error"]
    assert [m["id"] for m in inbox(bd, store, "worker-9")] == [other]
    repeat = bd(store, "mail", "ack", ids[0], "--json", env={"BEADS_IDENTITY": "worker-1"})
    assert repeat.json()["acknowledged"] == [ids[0]]
    every = bd(store, "mail", "ack", "--all", "--json", env={"BEADS_IDENTITY": "worker-1"})
    assert every.json()["acknowledged"] == [ids[3]] and inbox(bd, store, "worker-1") == []
    assert bd(store, "mail", "ack", env={"BEADS_IDENTITY": "worker-1"}).code == 1


# -- reply, threads, show ---------------------------------------------------------

def test_reply_threading_on_every_path(store: Path, bd) -> None:
    root = send(bd, store, "manager", "worker-1", "-s", "Task assigned", "-m", "Do X")
    r1 = bd(store, "mail", "reply", root["id"][:8], "-m", "On it", "--json",
            env={"BEADS_IDENTITY": "worker-1"}).json()
    assert r1["to"] == ["manager"] and r1["subject"] == "Re: Task assigned"
    assert r1["replies_to"] == root["id"] and r1["thread_id"] == root["id"]
    assert r1["type"] == "response" and r1["ephemeral"] is True
    r2 = bd(store, "mail", "reply", r1["id"], "-m", "Thanks", "--urgent", "--json",
            env={"BEADS_IDENTITY": "manager"}).json()
    assert r2["subject"] == "Re: Task assigned" and r2["priority"] == 0
    assert r2["replies_to"] == r1["id"] and r2["thread_id"] == root["id"]
    own = bd(store, "mail", "reply", r2["id"], "-m", "PS", "--json",
             env={"BEADS_IDENTITY": "manager"}).json()
    assert own["to"] == ["worker-1"]  # replying to my own message goes to its recipients
    via_send = send(bd, store, "worker-1", "manager", "-s", "Also", "-m", "x", "--reply-to", r2["id"])
    assert via_send["thread_id"] == root["id"] and via_send["replies_to"] == r2["id"]
    thread = bd(store, "show", r2["id"], "--thread", "--json").json()
    assert [m["id"] for m in thread] == [root["id"], r1["id"], r2["id"], own["id"], via_send["id"]]
    text = bd(store, "show", root["id"], "--thread").out.splitlines()
    assert text[0] == f"Thread {root['id']} (5 messages):"
    assert any(line.startswith(f"    {r1['id']}  worker-1 -> manager") for line in text)
    assert any(line.startswith(f"        {r2['id']}  manager -> worker-1") for line in text)


def test_show_any_record(store: Path, bd) -> None:
    sent = send(bd, store, "a", "b", "-s", "Hello", "-m", "body")
    shown = bd(store, "show", sent["id"][:7], "--json").json()
    assert shown["kind"] == "message" and shown["id"] == sent["id"] and shown["receipts"] == []
    assert "Subject:  Hello" in bd(store, "show", sent["id"]).out
    bd(store, "mail", "ack", sent["id"], "--identity", "b")
    receipt = next(r for r in Workspace.open(store).index.all_records() if r["kind"] == "receipt")
    data = bd(store, "show", receipt["id"], "--json").json()
    assert data["kind"] == "receipt" and data["state"] == "acked"
    assert "kind:" in bd(store, "show", receipt["id"]).out
    bad = bd(store, "show", receipt["id"], "--thread", "--json")
    assert bad.code == 1 and "not a message" in bad.json()["error"]["message"]


def test_delete_needs_capability(store: Path, bd) -> None:
    ws = Workspace.open(store)
    ws.write("boss", [("agent", {"agent": "boss", "op": "register", "name": "B", "role": "manager",
                                 "group": None, "tier": 1, "model": None, "status": "active"})],
             "setup")
    sent = send(bd, store, "w1", "boss", "-s", "x", "-m", "y")
    denied = bd(store, "mail", "delete", sent["id"], "--identity", "w1", "--json")
    assert denied.code == 1 and denied.json()["error"]["type"] == "permission_denied"
    done = bd(store, "mail", "delete", sent["id"], "--identity", "boss", "--json")
    assert done.code == 0 and done.json()["deleted"] == sent["id"]
    assert inbox(bd, store, "boss") == []
    gone = bd(store, "mail", "read", sent["id"], "--identity", "boss")
    assert gone.code == 1 and "was deleted" in gone.err


# -- cleanup ----------------------------------------------------------------------

def mail_state(ws: Workspace) -> dict:
    fp = ws.index.fingerprint()
    return {k: fp[k] for k in ("messages", "message_to", "receipts", "deleted", "purged", "records")}


def test_cleanup_dry_run_then_force(store: Path, bd) -> None:
    done = send(bd, store, "manager", "w1", "w2", "-s", "Closed", "-m", "x")
    half = send(bd, store, "manager", "w1", "w2", "-s", "Half acked", "-m", "x")
    kept = send(bd, store, "manager", "w1", "-s", "Permanent", "-m", "x", "--permanent")
    for me in ("w1", "w2"):
        assert bd(store, "mail", "ack", done["id"], "--identity", me).code == 0
    bd(store, "mail", "ack", half["id"], kept["id"], "--identity", "w1")
    before = head(store)
    preview = bd(store, "cleanup", "--ephemeral", "--json").json()
    assert preview["mode"] == "preview" and [m["id"] for m in preview["messages"]] == [done["id"]]
    dry = bd(store, "cleanup", "--ephemeral", "--dry-run")
    assert dry.out.startswith("Would remove 1 closed ephemeral message:") and head(store) == before
    assert bd(store, "cleanup", "--ephemeral", "--older-than", "1h", "--json").json()["count"] == 0
    forced = bd(store, "cleanup", "--ephemeral", "--force", "--json")
    data = forced.json()
    assert forced.code == 0 and data["count"] == 1 and len(data["purge_records"]) == 1
    assert data["lines_removed"] == 3 and len(data["compacted_segments"]) == 1
    ws = Workspace.open(store)
    ws.refresh()
    assert mail.short_ids(ws, [done["id"]])  # index still answers
    assert bd(store, "show", done["id"]).code == 1
    assert [m["id"] for m in inbox(bd, store, "w2")] == [half["id"]]
    segments = git(store, "ls-tree", "-r", "--name-only", "beadsmail").split()
    content = "".join(git(store, "show", f"beadsmail:{p}") for p in segments if p.endswith(".jsonl"))
    assert done["id"] in content  # only in the purge record and the compaction marker now
    # (and in the stub a signed feed keeps in the line's place: its position and hash)
    lines = [json.loads(line) for line in content.splitlines() if done["id"] in line]
    assert sorted(r["kind"] for r in lines) == ["compaction", "dropped", "purge"]
    assert '"subject":"Closed"' not in content
    marker = next(r for r in lines if r["kind"] == "compaction")
    assert len(marker["removed"]) == 3 and marker["segment"] in data["compacted_segments"][0]
    assert bd(store, "doctor", "--json").json()["signatures"] == []  # (the chain holds)
    incremental = mail_state(ws)
    ws.index.reset()
    ws.refresh()
    assert mail_state(ws) == incremental
    assert bd(store, "cleanup", "--ephemeral", "--force", "--json").json()["count"] == 0
    send(bd, store, "manager", "w1", "-s", "after", "-m", "x")  # the store still appends
    assert len(inbox(bd, store, "w1")) == 1
    fsck(store)


def test_cleanup_bad_flags(store: Path, bd) -> None:
    assert bd(store, "cleanup", "--ephemeral", "--dry-run", "--force").code == 1
    assert bd(store, "cleanup", "--dry-run").code == 1
    assert bd(store, "cleanup", "--ephemeral", "--older-than", "soon").code == 1


# -- identity -------------------------------------------------------------------

def test_whoami_identity_order(store: Path, bd) -> None:
    import getpass

    user = bd(store, "whoami", "--json").json()
    assert user["identity"] == getpass.getuser() and user["source"] == "user"
    (store / ".beads" / "config.json").write_text(json.dumps({"identity": "from-json"}))
    assert bd(store, "whoami", "--json").json()["identity"] == "from-json"
    cfg = store / ".beads" / "config.yaml"
    cfg.write_text(cfg.read_text() + "identity: from-yaml\n")
    assert bd(store, "whoami", "--json").json()["identity"] == "from-yaml"
    claude = bd(store, "whoami", "--json", env={"CLAUDE_SESSION_ID": "orch-epic4"}).json()
    assert claude["identity"] == "orch-epic4" and claude["source"] == "CLAUDE_SESSION_ID"
    btmsg = bd(store, "whoami", "--json", env={"CLAUDE_SESSION_ID": "orch-epic4",
                                               "BTMSG_AGENT_ID": "mgr-1"}).json()
    assert btmsg["identity"] == "mgr-1" and btmsg["source"] == "BTMSG_AGENT_ID"
    env = bd(store, "whoami", "--json", env={"BEADS_IDENTITY": "from-env",
                                             "BTMSG_AGENT_ID": "mgr-1"}).json()
    assert env["identity"] == "from-env" and env["source"] == "BEADS_IDENTITY"
    flag = bd(store, "whoami", "--identity", "from-flag", "--json",
              env={"BEADS_IDENTITY": "from-env"}).json()
    assert flag["identity"] == "from-flag" and flag["source"] == "--identity"
    assert bd(store, "whoami").out.startswith("from-yaml (from .beads config;")


def test_three_agents_in_three_worktrees(worktrees: list[Path], bd) -> None:
    main, wt1, wt2 = worktrees
    assert bd(main, "init").code == 0
    for wt, name in zip(worktrees, ("manager", "worker-1", "worker-2"), strict=True):
        (wt / ".beads").mkdir(exist_ok=True)
        (wt / ".beads" / "config.yaml").write_text(f"identity: {name}\n")
    task = bd(main, "mail", "send", "worker-1", "worker-2", "-s", "Split the work", "-m", "A/B",
              "--json").json()
    got1 = bd(wt1, "mail", "inbox", "--json").json()
    got2 = bd(wt2, "mail", "inbox", "--json").json()
    assert [m["id"] for m in got1] == [m["id"] for m in got2] == [task["id"]]
    a = bd(wt1, "mail", "reply", task["id"], "-m", "I take A", "--json").json()
    b = bd(wt2, "mail", "reply", task["id"], "-m", "I take B", "--json").json()
    c = bd(main, "mail", "reply", b["id"], "-m", "Good", "--json").json()
    assert a["to"] == b["to"] == ["manager"] and c["to"] == ["worker-2"]
    assert {m["id"] for m in bd(main, "mail", "inbox", "--json").json()} == {a["id"], b["id"]}
    assert bd(wt1, "mail", "ack", task["id"], "--json").json()["acknowledged"] == [task["id"]]
    assert [m["id"] for m in bd(wt2, "mail", "inbox", "--json").json()] == [c["id"], task["id"]]
    thread = bd(wt1, "show", c["id"], "--thread", "--json").json()
    assert [m["id"] for m in thread] == [task["id"], a["id"], b["id"], c["id"]]
    assert {m["thread_id"] for m in thread} == {task["id"]}
    assert git(main, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(wt1, "status", "--porcelain").strip() == "?? .beads/"
    fsck(main)


# -- bad input --------------------------------------------------------------------

BAD_SENDS = [
    (["b", "-s", "", "-m", "x"], "subject is empty"),
    (["b", "-s", "   ", "-m", "x"], "subject is empty"),
    (["b", "-s", "s", "-m", ""], "body is empty"),
    (["b", "-s", "two\nlines", "-m", "x"], "one line"),
    (["b", "-s", "s", "-m", "x", "--priority", "5"], "out of range"),
    (["b", "-s", "s", "-m", "x", "--priority", "-1"], "out of range"),
    (["b", "-s", "s", "-m", "x", "--context", "{not json"], "not valid JSON"),
    (["b", "-s", "s", "-m", "x", "--metadata", "[1]"], "must be a JSON object"),
    (["b", "-s", "s", "-m", "x", "--type", "gossip"], "unknown message type"),
    (["b", "-s", "s", "-m", "x", "--action", "dance"], "unknown action"),
    (["b/c", "-s", "s", "-m", "x"], "invalid recipient"),
    (["#Caps", "-s", "s", "-m", "x"], "invalid recipient"),
    (["b", "-s", "s", "-m", "x" * 65537], "limit is 65536"),
    (["b", "-s", "s" * 501, "-m", "x"], "limit is 500"),
    (["b", "-s", "bad \udcff byte", "-m", "x"], "not valid UTF-8"),
    (["b", "-s", "s", "-m", "x", "--reply-to", "bd-zzzzzzzz"], "no message"),
]


@pytest.mark.parametrize(("args", "expected"), BAD_SENDS, ids=[e for _, e in BAD_SENDS])
def test_bad_send_is_one_line_and_writes_nothing(store: Path, bd, args, expected) -> None:
    before = head(store)
    result = bd(store, "mail", "send", *args, "--identity", "a")
    assert result.code == 1, result.out + result.err
    assert result.err.count("\n") == 1 and expected in result.err and result.out == ""
    as_json = bd(store, "mail", "send", *args, "--identity", "a", "--json")
    assert as_json.json()["error"]["type"] in ("invalid_input", "not_found")
    assert head(store) == before


@pytest.mark.parametrize("name", ["a/b", "tab\there", "bell\x07", "-dash", ""])
def test_bad_identity(store: Path, bd, name: str) -> None:
    before = head(store)
    flag = bd(store, "mail", "send", "b", "-s", "s", "-m", "x", "--identity", name)
    env = bd(store, "mail", "send", "b", "-s", "s", "-m", "x", env={"BEADS_IDENTITY": name or "x y"})
    for result in (flag, env) if name else (env,):
        assert result.code == 1 and result.err.count("\n") == 1 and "identity" in result.err
    assert head(store) == before


def test_non_utf8_body_on_stdin(store: Path, bd) -> None:
    before = head(store)
    result = bd(store, "mail", "send", "b", "-s", "s", "-m", "-", "--identity", "a",
                input=b"caf\xe9\n")
    assert result.code == 1 and "not UTF-8" in result.err and head(store) == before


def test_unknown_and_ambiguous_ids(store: Path, bd) -> None:
    ws = Workspace.open(store)
    write_message(ws, id="bd-aaaa000000001", to=("w1",))
    write_message(ws, id="bd-aaaa000000002", to=("w1",))
    before = head(store)
    for command in (["mail", "read"], ["mail", "reply"], ["show"]):
        extra = ["-m", "x"] if command[-1] == "reply" else []
        amb = bd(store, *command, "aaaa", *extra, "--identity", "w1", "--json") \
            if command != ["show"] else bd(store, "show", "aaaa", "--json")
        assert amb.code == 1 and amb.json()["error"]["type"] == "ambiguous"
        assert amb.json()["error"]["candidates"] == ["bd-aaaa000000001", "bd-aaaa000000002"]
    unknown = bd(store, "mail", "read", "bd-bbbbbbbb", "--identity", "w1")
    assert unknown.code == 1 and unknown.err.count("\n") == 1 and "no message" in unknown.err
    short = bd(store, "mail", "read", "aa", "--identity", "w1")
    assert short.code == 1 and "at least 4 characters" in short.err
    usage = bd(store, "mail", "send", "b", "-m", "x", "--identity", "a")
    assert usage.code == 2 and "--subject" in usage.err
    assert bd(store, "mail", "inbox", "--limit", "many").code == 2
    assert head(store) == before


def test_purge_reaches_other_clones_through_sync(tmp_path: Path, bd) -> None:
    from conftest import make_repo

    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(make_repo(tmp_path / "seed"), "push", "-q", str(remote), "main")
    a, b = tmp_path / "a", tmp_path / "b"
    for clone in (a, b):
        git(tmp_path, "clone", "-q", str(remote), str(clone))
    assert bd(a, "init").code == 0
    sent = send(bd, a, "manager", "w1", "-s", "Short-lived", "-m", "x")
    kept = send(bd, a, "manager", "w1", "-s", "Still open", "-m", "x")
    assert bd(a, "mail", "ack", sent["id"], "--identity", "w1").code == 0
    assert bd(a, "sync").code == 0 and bd(b, "sync").code == 0
    assert {m["id"] for m in inbox(bd, b, "w1")} == {kept["id"]}
    assert bd(b, "show", sent["id"]).code == 0
    assert bd(a, "cleanup", "--ephemeral", "--force", "--json").json()["count"] == 1
    assert bd(a, "sync").code == 0 and bd(b, "sync").code == 0
    assert bd(b, "show", sent["id"]).code == 1
    assert [m["id"] for m in inbox(bd, b, "w1")] == [kept["id"]]
    ws = Workspace.open(b)
    ws.refresh()
    incremental = mail_state(ws)
    assert sent["id"] not in incremental["records"]
    ws.index.reset()
    ws.refresh()
    assert mail_state(ws) == incremental


# -- the fold is order-independent ----------------------------------------------------

def _mail_records(ops: list[tuple]) -> list[dict]:
    from beadsmail import records

    out: list[dict] = []
    ids: list[str] = []
    for clock, (op, a, b) in enumerate(ops, start=1):
        def make(kind: str, clock: int = clock, **fields) -> dict:
            return records.make(kind, "tester", clock, "abcdefabcdef", "bd-", **fields)

        if op == "send" or not ids:
            rec = make("message", **{**_fields(), "to": [f"w{a}", "*"] if b else [f"w{a}"]})
            ids.append(rec["id"])
        elif op == "receipt":
            rec = make("receipt", message=ids[a % len(ids)], recipient=f"w{b}",
                       state=("delivered", "read", "acked")[a % 3])
        elif op == "tombstone":
            rec = make("tombstone", target=ids[a % len(ids)])
        else:
            rec = make("purge", targets=sorted({ids[a % len(ids)], ids[b % len(ids)]}))
        out.append(rec)
    return out


def _fields() -> dict:
    return {"from": "boss", "subject": "s", "body": "b", "priority": 2, "type": "request",
            "thread_id": "bd-0000000000000", "replies_to": None, "ephemeral": True,
            "metadata": {}, "action_requested": "none"}


def _folded(tmp: Path, name: str, recs: list[dict], batch: int, bulk: bool = False) -> dict:
    from beadsmail import records
    from beadsmail.index import Index
    from beadsmail.index import mail as mail_index

    index = Index(tmp / f"{name}.sqlite3")
    for start in range(0, len(recs), batch):
        items = ((r, records.dumps(r).decode(), "x", i + start)
                 for i, r in enumerate(recs[start:start + batch]))
        if bulk and start == 0:  # the first batch as a build loads it
            with index.building(force=True):
                index.load([items])
            continue
        with index.transaction():
            index.ingest(items)
    fp = index.fingerprint()
    counts = index.counts()
    index.close()
    return {"counts": counts, **{k: fp[k] for k in (*mail_index.TABLES, "records")}}


def test_mail_fold_ignores_arrival_order(tmp_path: Path) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    op = st.tuples(st.sampled_from(["send", "receipt", "tombstone", "purge"]),
                   st.integers(0, 5), st.integers(0, 3))
    counter = iter(range(10**6))

    @settings(max_examples=40, deadline=None)
    @given(st.lists(op, min_size=1, max_size=14), st.randoms(use_true_random=False),
           st.integers(1, 4))
    def check(ops, rng, batch) -> None:
        recs = _mail_records(ops)
        shuffled = list(recs)
        rng.shuffle(shuffled)
        n = next(counter)
        reference = _folded(tmp_path, f"a{n}", recs, len(recs))
        assert _folded(tmp_path, f"b{n}", shuffled, batch) == reference
        # a load into an empty index (a rebuild), repeated lines included
        assert _folded(tmp_path, f"c{n}", shuffled + recs[::2], batch, bulk=True) == reference

    check()


def test_cleanup_keeps_what_stored_mail_points_at(store: Path, bd) -> None:
    root = send(bd, store, "manager", "w1", "-s", "Task", "-m", "Do X")
    mid = bd(store, "mail", "reply", root["id"], "-m", "On it", "--json",
             env={"BEADS_IDENTITY": "w1"}).json()
    last = bd(store, "mail", "reply", mid["id"], "-m", "Thanks", "--json",
              env={"BEADS_IDENTITY": "manager"}).json()
    lone = send(bd, store, "manager", "w1", "-s", "Lone", "-m", "x")
    for me, ids in (("w1", [root["id"], lone["id"]]), ("manager", [mid["id"]])):
        assert bd(store, "mail", "ack", *ids, "--identity", me).code == 0
    # the root and the middle reply are closed, but the last reply (unacked) points at both
    preview = bd(store, "cleanup", "--ephemeral", "--json").json()
    assert [m["id"] for m in preview["messages"]] == [lone["id"]]
    assert {k["id"]: k["kept_for"] for k in preview["kept"]} == {
        root["id"]: sorted([mid["id"], last["id"]]), mid["id"]: [last["id"]]}
    assert "kept 2" in bd(store, "cleanup", "--ephemeral").out.lower()
    forced = bd(store, "cleanup", "--ephemeral", "--force", "--json").json()
    assert [m["id"] for m in forced["messages"]] == [lone["id"]]
    thread = bd(store, "show", last["id"], "--thread", "--json")
    assert thread.code == 0, thread.err
    assert [m["id"] for m in thread.json()] == [root["id"], mid["id"], last["id"]]
    # once the last reply is closed too, the whole thread goes
    assert bd(store, "mail", "ack", last["id"], "--identity", "w1").code == 0
    again = bd(store, "cleanup", "--ephemeral", "--force", "--json").json()
    assert sorted(m["id"] for m in again["messages"]) == sorted([root["id"], mid["id"], last["id"]])
    assert again["kept"] == [] and bd(store, "show", root["id"]).code == 1


def test_cleanup_keeps_an_ephemeral_root_of_a_permanent_reply(store: Path, bd) -> None:
    root = send(bd, store, "manager", "w1", "-s", "Question", "-m", "?")
    answer = send(bd, store, "w1", "manager", "-s", "Answer", "-m", "!", "--permanent",
                  "--reply-to", root["id"])
    for me, mid in (("w1", root["id"]), ("manager", answer["id"])):
        assert bd(store, "mail", "ack", mid, "--identity", me).code == 0
    forced = bd(store, "cleanup", "--ephemeral", "--force", "--json").json()
    assert forced["count"] == 0 and [k["id"] for k in forced["kept"]] == [root["id"]]
    assert bd(store, "show", answer["id"], "--thread", "--json").json()[0]["id"] == root["id"]
