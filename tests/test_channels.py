"""Channels: create, delete, list, post, read, join, leave; the task board's channels."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import error, ok, store_commits

BOSS = {"BEADS_IDENTITY": "boss"}
W1 = {"BEADS_IDENTITY": "w1"}
W2 = {"BEADS_IDENTITY": "w2"}





@pytest.fixture
def team(repo: Path, bd) -> Path:
    ok(bd(repo, "init", "--json"))
    for agent, role, tier in (("boss", "manager", "1"), ("w1", "tester", "2"), ("w2", "project", "2")):
        ok(bd(repo, "agent", "register", "--id", agent, "--role", role, "--tier", tier,
              "--group", "core", "--json", env=BOSS))
    return repo


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {c["name"]: c for c in rows}


def test_create_post_read_list(team: Path, bd) -> None:
    created = ok(bd(team, "channel", "create", "#backend", "--description", "server work", "--json",
                    env=BOSS))
    assert created["name"] == "backend" and created["members"] == ["boss"]
    ok(bd(team, "channel", "join", "backend", "--json", env=W1))
    posted = ok(bd(team, "channel", "post", "backend", "-m", "deploy at five\nall hands", "--json",
                   env=W1))
    assert posted["channel"] == "backend" and posted["subject"] == "deploy at five"
    assert posted["type"] == "broadcast" and posted["thread_id"] == posted["id"]
    ok(bd(team, "channel", "post", "backend", "-m", "second", "-s", "Two", "--priority", "0",
          "--json", env=BOSS))
    read = ok(bd(team, "channel", "read", "backend", "--json"))
    assert [m["subject"] for m in read["messages"]] == ["deploy at five", "Two"]
    assert read["messages"][1]["priority"] == 0 and read["total"] == 2
    assert [m["subject"] for m in ok(bd(team, "channel", "read", "backend", "--limit", "1",
                                        "--json"))["messages"]] == ["Two"]
    text = ok(bd(team, "channel", "read", "#backend"))
    assert "deploy at five" in text and "all hands" in text
    listed = by_name(ok(bd(team, "channel", "list", "--json")))
    assert listed["backend"]["members"] == ["boss", "w1"] and listed["backend"]["messages"] == 2
    assert listed["backend"]["description"] == "server work"
    assert "#backend (group core): 2 messages; boss, w1" in ok(bd(team, "channel", "list"))
    assert "posted" in ok(bd(team, "channel", "post", "backend", "-m", "x", env=W2))
    assert "created #ops" in ok(bd(team, "channel", "create", "ops", env=BOSS))


def test_task_board_channels_always_listed_and_open_to_all(team: Path, bd) -> None:
    listed = by_name(ok(bd(team, "channel", "list", "--json")))
    assert listed["review-queue"]["builtin"] and listed["review-log"]["builtin"]
    ok(bd(team, "channel", "post", "review-queue", "-m", "please look at my branch", env=W2))
    assert ok(bd(team, "channel", "read", "review-queue", "--json"))["total"] == 1
    ok(bd(team, "channel", "join", "review-queue", env=W1))
    assert by_name(ok(bd(team, "channel", "list", "--json")))["review-queue"]["members"] == ["w1"]


def test_mail_send_to_channel_is_a_channel_post_that_reaches_members(team: Path, bd) -> None:
    ok(bd(team, "channel", "create", "backend", env=BOSS))
    ok(bd(team, "channel", "join", "backend", env=W1))
    sent = ok(bd(team, "mail", "send", "#backend", "-s", "via mail", "-m", "hello", "--json",
                 env=W2))
    assert [m["id"] for m in ok(bd(team, "channel", "read", "backend", "--json"))["messages"]] == \
        [sent["id"]]
    assert sent["id"] in [m["id"] for m in ok(bd(team, "mail", "inbox", "--json", env=W1))]
    assert sent["id"] in [m["id"] for m in ok(bd(team, "mail", "inbox", "--json", env=BOSS))]
    assert sent["id"] not in [m["id"] for m in ok(bd(team, "mail", "inbox", "--json", env=W2))]
    agents = {a["id"]: a for a in ok(bd(team, "agent", "list", "--json"))}
    assert (agents["w1"]["unread"], agents["boss"]["unread"], agents["w2"]["unread"]) == (1, 1, 0)


def test_bad_channel_names_are_refused_and_write_nothing(team: Path, bd) -> None:
    before = store_commits(team)
    for name in ("my channel", "../etc", "a/b", "Caps", "#", "_x", "x" * 65):
        err = error(bd(team, "channel", "create", name, "--json", env=BOSS), "invalid_input")
        assert "channel name" in err["message"], name
        error(bd(team, "channel", "post", name, "-m", "hi", "--json", env=BOSS), "invalid_input")
    assert store_commits(team) == before


def test_only_managers_create_and_delete(team: Path, bd) -> None:
    err = error(bd(team, "channel", "create", "mine", "--json", env=W1), "permission_denied")
    assert "channel.create" in err["message"]
    ok(bd(team, "channel", "create", "mine", env=BOSS))
    assert "already exists" in error(bd(team, "channel", "create", "mine", "--json", env=BOSS),
                                     "conflict")["message"]
    assert "channel.delete" in error(bd(team, "channel", "delete", "mine", "--json", env=W1),
                                     "permission_denied")["message"]
    assert ok(bd(team, "channel", "delete", "mine", "--json", env=BOSS))["deleted"]
    assert "mine" not in by_name(ok(bd(team, "channel", "list", "--json")))
    error(bd(team, "channel", "post", "mine", "-m", "hi", "--json", env=BOSS), "not_found")
    error(bd(team, "channel", "delete", "mine", "--json", env=BOSS), "not_found")
    ok(bd(team, "channel", "create", "mine", env=BOSS))
    assert "deleted #mine" in ok(bd(team, "channel", "delete", "#mine", env=BOSS))


def test_unknown_channel_suggests_near_names(team: Path, bd) -> None:
    ok(bd(team, "channel", "create", "backend", env=BOSS))
    for args in (("post", "backnd", "-m", "x"), ("read", "backnd"), ("join", "backnd")):
        err = error(bd(team, "channel", *args, "--json", env=W1), "not_found")
        assert "did you mean #backend" in err["message"], args


def test_join_and_leave(team: Path, bd) -> None:
    ok(bd(team, "channel", "create", "backend", env=BOSS))
    joined = ok(bd(team, "channel", "join", "backend", "--json", env=W1))
    assert joined["changed"] and joined["record"]
    again = ok(bd(team, "channel", "join", "backend", "--json", env=W1))
    assert not again["changed"] and again["record"] is None
    assert "is already in" in ok(bd(team, "channel", "join", "backend", env=W1))
    assert "channel.create" in error(bd(team, "channel", "join", "backend", "--agent", "w2",
                                        "--json", env=W1), "permission_denied")["message"]
    assert ok(bd(team, "channel", "join", "backend", "--agent", "w2", "--json", env=BOSS))["changed"]
    assert ok(bd(team, "agent", "show", "w2", "--json"))["channels"] == ["backend"]
    assert "w1 left #backend" in ok(bd(team, "channel", "leave", "backend", env=W1))
    assert not ok(bd(team, "channel", "leave", "backend", "--json", env=W1))["changed"]
    members = by_name(ok(bd(team, "channel", "list", "--json")))["backend"]["members"]
    assert members == ["boss", "w2"]


def test_post_validation(team: Path, bd) -> None:
    ok(bd(team, "channel", "create", "backend", env=BOSS))
    assert "empty" in error(bd(team, "channel", "post", "backend", "-m", "  ", "--json", env=W1),
                            "invalid_input")["message"]
    assert "type" in error(bd(team, "channel", "post", "backend", "-m", "x", "--type", "gossip",
                              "--json", env=W1), "invalid_input")["message"]
    assert "priority" in error(bd(team, "channel", "post", "backend", "-m", "x", "--priority", "7",
                                  "--json", env=W1), "invalid_input")["message"]
    assert "--limit" in error(bd(team, "channel", "read", "backend", "--limit", "0", "--json"),
                              "invalid_input")["message"]
