"""The btmsg reference (seeds 000): its command lines, run as written, on beadsmail.

Each shell block of the document runs verbatim through ``/bin/sh`` with the
installed ``btmsg`` script, in a real repository whose agents sit in linked
worktrees, and the fields the document's tables show are checked in the
``--json`` output (``btmsg ... --json`` prints btmsg's columns).
Lines that cannot run exactly as printed say why where they are adapted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shell import js, ok, sh

# The document's shell blocks, as printed.
REGISTER = """btmsg register --id mgr-1 --name "Manager" --role manager \\
  --group my-team --tier 1"""
SEND = 'btmsg send --to architect-1 --content "Review the auth module architecture"'
CHANNEL_POST = """btmsg channel-post --channel review-queue \\
  --content "Task T-42 moved to review\""""
READ = "btmsg read"
CHANNELS = "btmsg channels"
HEARTBEAT = "btmsg heartbeat"
# "btmsg ack --message-id" is printed without its value (a message id), which no
# command line can supply; the test passes the id the read returned.
ACK = "btmsg ack --message-id {id}"


@pytest.fixture
def team(worktrees: list[Path], bd) -> list[Path]:
    """mgr-1 registered (the document's line) in the main checkout, architect-1 and
    tester-1 registered from their own worktrees."""
    main, wt1, wt2 = worktrees
    assert bd(main, "init").code == 0
    ok(sh(main, REGISTER))
    ok(sh(wt1, 'btmsg register --id architect-1 --name "Architect" --role architect '
               '--group my-team --tier 1'))
    ok(sh(wt2, "btmsg register tester-1 Tester tester my-team"))  # the script's positional form
    return worktrees


def test_register_stores_the_agents_table_columns(team: list[Path]) -> None:
    agents = {a["id"]: a for a in js(sh(team[0], "btmsg status --json"))}
    assert agents["mgr-1"] | {"last_seen": None, "unread": 0} == {
        "id": "mgr-1", "name": "Manager", "role": "manager", "group_id": "my-team", "tier": 1,
        "model": None, "status": "active", "last_seen": None, "stalled": False, "unread": 0}
    assert agents["tester-1"]["role"] == "tester" and agents["tester-1"]["group_id"] == "my-team"


def test_send_read_and_ack_as_the_document_shows(team: list[Path], bd) -> None:
    main, wt1, _ = team
    sent = js(sh(main, SEND + " --json", BTMSG_AGENT_ID="mgr-1"))
    assert "Sent to architect-1" in ok(sh(main, SEND, BTMSG_AGENT_ID="mgr-1"))
    unread = js(sh(wt1, READ + " --json", BTMSG_AGENT_ID="architect-1"))
    assert [m["id"] for m in unread][0] == sent["id"] and len(unread) == 2
    row = unread[0]
    assert {k: row[k] for k in ("from_agent", "to_agent", "content", "read", "reply_to",
                                "sender_group_id")} == {
        "from_agent": "mgr-1", "to_agent": "architect-1",
        "content": "Review the auth module architecture", "read": 1, "reply_to": None,
        "sender_group_id": "my-team"}
    assert row["created_at"].endswith("Z")
    assert js(sh(wt1, READ + " --json", BTMSG_AGENT_ID="architect-1")) == []  # read now
    assert "No unread messages." in ok(sh(wt1, READ, BTMSG_AGENT_ID="architect-1"))
    acked = js(sh(wt1, ACK.format(id=sent["id"]) + " --json", BTMSG_AGENT_ID="architect-1"))
    assert acked["acknowledged"] == [sent["id"]]
    # the same conversation in bd: acked, so no longer in the inbox, and threaded replies
    assert bd(wt1, "mail", "inbox", "--json", env={"BTMSG_AGENT_ID": "architect-1"}).json() == [
        m for m in bd(wt1, "mail", "inbox", "--json", "--identity", "architect-1").json()]
    reply = js(sh(wt1, f'btmsg reply {sent["id"]} "Looks sound" --json',
                  BTMSG_AGENT_ID="architect-1"))
    assert reply["reply_to"] == sent["id"] and reply["to_agent"] == "mgr-1"


def test_channel_post_and_channels(team: list[Path], bd) -> None:
    main, wt1, _ = team
    posted = js(sh(main, CHANNEL_POST + " --json", BTMSG_AGENT_ID="mgr-1"))
    assert posted["to_agent"] == "#review-queue" and posted["sender_group_id"] == "my-team"
    channels = {c["name"]: c for c in js(sh(wt1, CHANNELS + " --json",
                                            BTMSG_AGENT_ID="architect-1"))}
    assert channels["#review-queue"]["messages"] == 1
    assert set(channels["#review-queue"]) >= {"id", "name", "group_id", "created_by",
                                              "created_at"}
    assert "#review-queue" in ok(sh(wt1, CHANNELS, BTMSG_AGENT_ID="architect-1"))
    shown = bd(wt1, "channel", "read", "review-queue", "--json").json()
    assert [m["body"] for m in shown["messages"]] == ["Task T-42 moved to review"]


def test_heartbeat_updates_liveness(team: list[Path]) -> None:
    main = team[0]
    beat = js(sh(main, HEARTBEAT + " --json", BTMSG_AGENT_ID="mgr-1"))
    assert beat["agent"] == "mgr-1"
    agents = {a["id"]: a for a in js(sh(main, "btmsg status --json"))}
    assert agents["mgr-1"]["last_seen"] == beat["last_seen"] and not agents["mgr-1"]["stalled"]


def test_agents_must_register_and_name_themselves(team: list[Path]) -> None:
    main = team[0]
    for line in (SEND, READ, HEARTBEAT, CHANNEL_POST):
        refused = sh(main, line, BTMSG_AGENT_ID="ghost-9")
        assert refused.code == 1 and "not registered" in refused.err, line
        unnamed = sh(main, line)
        assert unnamed.code == 1 and "BTMSG_AGENT_ID" in unnamed.err, line
    usage = sh(main, "btmsg send --to")
    assert usage.code == 2 and "usage: btmsg" in usage.err
    # every other way of sending or receiving too, before it looks at the message
    for line in ("btmsg inbox", "btmsg ack --message-id bd-0000000000000",
                 "btmsg reply bd-0000000000000 thanks", "btmsg read bd-0000000000000",
                 "btmsg history mgr-1", "btmsg channel send review-queue hello",
                 "btmsg feed"):
        refused = sh(main, line, BTMSG_AGENT_ID="ghost-9")
        assert refused.code == 1 and "not registered" in refused.err, line


def test_role_permissions(team: list[Path]) -> None:
    """Create channels: manager only; read own DMs only; post to channels: everyone."""
    main, wt1, wt2 = team
    made = js(sh(main, "btmsg channel create design --json", BTMSG_AGENT_ID="mgr-1"))
    assert made["name"] == "#design"
    refused = sh(wt1, "btmsg channel create other", BTMSG_AGENT_ID="architect-1")
    assert refused.code == 1 and "channel.create" in refused.err
    ok(sh(wt2, 'btmsg channel-post --channel design --content "tests green"',
          BTMSG_AGENT_ID="tester-1"))
    dm = js(sh(main, 'btmsg send tester-1 "for the tester only" --json', BTMSG_AGENT_ID="mgr-1"))
    other = sh(wt1, f"btmsg read {dm['id']}", BTMSG_AGENT_ID="architect-1")
    assert other.code == 1 and "not addressed to architect-1" in other.err
    for line in (f"btmsg ack --message-id {dm['id']}", f"btmsg reply {dm['id']} me too"):
        other = sh(wt1, line, BTMSG_AGENT_ID="architect-1")
        assert other.code == 1 and "not addressed to architect-1" in other.err, line
    assert dm["id"] not in {m["id"] for m in js(sh(wt1, "btmsg inbox --all --json",
                                                    BTMSG_AGENT_ID="architect-1"))}
    mine = js(sh(wt2, f"btmsg read {dm['id']} --json", BTMSG_AGENT_ID="tester-1"))
    assert mine["content"] == "for the tester only" and mine["read"] == 1


def test_review_queue_post_from_bttask_reaches_btmsg(team: list[Path]) -> None:
    main, wt1, _ = team
    task = js(sh(main, 'bttask create --title "Fix auth bug" --priority high --json',
                 BTMSG_AGENT_ID="mgr-1"))
    ok(sh(main, f"bttask status --id {task['id']} --status review --version 1",
          BTMSG_AGENT_ID="mgr-1"))
    history = js(sh(wt1, "btmsg channel history review-queue --json",
                    BTMSG_AGENT_ID="architect-1"))
    assert [m["from_agent"] for m in history] == ["mgr-1"]
    assert task["id"] in history[0]["content"]
