"""Recipients: broadcast, @group, the contacts ACL, dead letters, audit and bd status."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import error, ok

BOSS = {"BEADS_IDENTITY": "boss"}
A1, A2, A3 = ({"BEADS_IDENTITY": f"a{i}"} for i in (1, 2, 3))




def send(bd, repo: Path, env: dict, *to: str, subject: str = "hi"):
    return bd(repo, "mail", "send", *to, "-s", subject, "-m", "body", "--json", env=env)


def message_count(repo: Path, bd) -> int:
    return ok(bd(repo, "where", "--json"))["records"].get("message", 0)


def acl(repo: Path, on: bool) -> None:
    (repo / ".beads" / "config.yaml").write_text(f"acl:\n  contacts: {'true' if on else 'false'}\n")


@pytest.fixture
def team(repo: Path, bd) -> Path:
    """boss (manager, tier 1) and a1..a3 (tier 2) in group core; a3 in group ui."""
    ok(bd(repo, "init", "--json"))
    ok(bd(repo, "agent", "register", "--id", "boss", "--role", "manager", "--tier", "1",
          "--group", "core", env=BOSS))
    for agent, group in (("a1", "core"), ("a2", "core"), ("a3", "ui")):
        ok(bd(repo, "agent", "register", "--id", agent, "--role", "tester", "--group", group,
              env=BOSS))
    return repo


def unread(repo: Path, bd) -> dict[str, tuple[int, int]]:
    return {a["id"]: (a["unread"], a["open"]) for a in ok(bd(repo, "agent", "list", "--json"))}


def test_broadcast_read_by_one_stays_unread_for_the_others(team: Path, bd) -> None:
    sent = ok(send(bd, team, BOSS, "*", subject="all hands"))
    assert unread(team, bd) == {"boss": (0, 0), "a1": (1, 1), "a2": (1, 1), "a3": (1, 1)}
    ok(bd(team, "mail", "read", sent["id"], "--json", env=A1))
    assert unread(team, bd)["a1"] == (0, 1)
    ok(bd(team, "mail", "ack", sent["id"], "--json", env=A2))
    assert unread(team, bd) == {"boss": (0, 0), "a1": (0, 1), "a2": (0, 0), "a3": (1, 1)}
    states = {who: [m["state"] for m in ok(bd(team, "mail", "inbox", "--json", env=env))]
              for who, env in (("a1", A1), ("a3", A3))}
    assert states == {"a1": ["read"], "a3": ["unread"]}


def test_group_address_reaches_only_its_members(team: Path, bd) -> None:
    sent = ok(send(bd, team, BOSS, "@core"))
    assert sent["id"] in [m["id"] for m in ok(bd(team, "mail", "inbox", "--json", env=A2))]
    assert ok(bd(team, "mail", "inbox", "--json", env=A3)) == []


def test_contacts_acl_off_then_on(team: Path, bd) -> None:
    ok(send(bd, team, A1, "a2"))
    acl(team, True)
    before = message_count(team, bd)
    err = error(send(bd, team, A1, "a2"), "permission_denied")
    assert "contacts ACL" in err["message"] and "bd contacts allow a1 a2" in err["message"]
    assert "broadcast" in error(send(bd, team, A1, "*"), "permission_denied")["message"]
    assert "a2" in error(send(bd, team, A1, "@core"), "permission_denied")["message"]
    assert message_count(team, bd) == before, "a refused send writes nothing"
    ok(send(bd, team, BOSS, "a2"))  # tier 1 sender is exempt
    ok(send(bd, team, A1, "boss"))  # anyone may reach a tier 1 agent
    ok(bd(team, "channel", "create", "ops", env=BOSS))
    ok(bd(team, "channel", "post", "ops", "-m", "channels are open", env=A1))
    allowed = ok(bd(team, "contacts", "allow", "a1", "a2", "--json", env=BOSS))
    assert allowed["pairs"] == [{"from": "a1", "to": "a2"}]
    ok(send(bd, team, A1, "a2"))
    error(send(bd, team, A2, "a1"), "permission_denied")
    assert "allowed: a1 -> a2, a2 -> a1" in ok(bd(team, "contacts", "allow", "a1", "a2", "--both",
                                                 env=BOSS))
    ok(send(bd, team, A2, "a1"))
    ok(send(bd, team, A2, "@core"))  # a2 may now reach every other member of core
    listed = ok(bd(team, "contacts", "list", "--json"))
    assert listed["enabled"] and {"from": "a2", "to": "a1"} in listed["contacts"]
    assert "revoked: a1 -> a2" in ok(bd(team, "contacts", "revoke", "a1", "a2", env=BOSS))
    error(send(bd, team, A1, "a2"), "permission_denied")
    acl(team, False)
    ok(send(bd, team, A1, "a2"))


def test_contacts_commands_validate_and_need_a_manager(team: Path, bd) -> None:
    assert "contacts.manage" in error(bd(team, "contacts", "allow", "a1", "a2", "--json", env=A1),
                                      "permission_denied")["message"]
    error(bd(team, "contacts", "allow", "a1", "a1", "--json", env=BOSS), "invalid_input")
    error(bd(team, "contacts", "allow", "a1", "a/2", "--json", env=BOSS), "invalid_input")
    result = bd(team, "contacts", "allow", "a1", "ghost", "--json", env=BOSS)
    assert result.code == 0 and "ghost is not a registered agent" in result.err
    text = ok(bd(team, "contacts", "list", "--agent", "a1"))
    assert "contacts ACL: off" in text and "a1 -> ghost" in text
    assert ok(bd(team, "agent", "show", "a1", "--json"))["contacts"] == ["ghost"]


def test_dead_letter_for_a_typo_then_delivery_when_it_registers(team: Path, bd) -> None:
    result = send(bd, team, BOSS, "a22")
    assert result.code == 0 and "a22 is not a registered agent (did you mean a2" in result.err
    sent = result.json()
    dlq = ok(bd(team, "dlq", "list", "--json"))
    assert [(d["message"], d["recipient"], d["reason"]) for d in dlq] == [(sent["id"], "a22", "unknown")]
    assert "a2" in dlq[0]["did_you_mean"]
    assert "a22 [unknown]" in ok(bd(team, "dlq", "list"))
    assert ok(bd(team, "status", "--json", env=BOSS))["dead_letters"] == 1
    ok(bd(team, "agent", "register", "--id", "a22", "--role", "tester", env=BOSS))
    assert ok(bd(team, "dlq", "list", "--json")) == []
    inbox = ok(bd(team, "mail", "inbox", "--json", env={"BEADS_IDENTITY": "a22"}))
    assert [m["id"] for m in inbox] == [sent["id"]]


def test_stopped_unregistered_group_and_channel_dead_letters(team: Path, bd) -> None:
    ok(bd(team, "agent", "status", "a3", "stopped", env=BOSS))
    result = send(bd, team, BOSS, "a3", "@nobody", "#nowhere")
    assert result.code == 0
    for words in ("a3 is stopped", "group @nobody", "channel #nowhere does not exist"):
        assert words in result.err
    reasons = {d["recipient"]: d["reason"] for d in ok(bd(team, "dlq", "list", "--json"))}
    assert reasons == {"a3": "stopped", "@nobody": "empty group", "#nowhere": "no channel"}
    ok(bd(team, "agent", "status", "a3", "active", env=BOSS))
    ok(bd(team, "channel", "create", "nowhere", env=BOSS))
    assert {d["recipient"] for d in ok(bd(team, "dlq", "list", "--json"))} == {"@nobody"}
    ok(bd(team, "agent", "unregister", "a2", env=BOSS))
    late = send(bd, team, BOSS, "a2")
    assert "a2 is unregistered" in late.err
    assert {d["recipient"] for d in ok(bd(team, "dlq", "list", "--json"))} == {"@nobody", "a2"}


def test_dlq_resolve(team: Path, bd) -> None:
    sent = ok(send(bd, team, A1, "ghost", "phantom"))
    other = ok(send(bd, team, A1, "a2"))
    assert "dlq.resolve" in error(bd(team, "dlq", "resolve", sent["id"], "--json", env=A2),
                                  "permission_denied")["message"]
    error(bd(team, "dlq", "resolve", other["id"], "--json", env=A1), "not_found")
    error(bd(team, "dlq", "resolve", "bd-zzzzzzzzzzzzz", "--json", env=A1), "not_found")
    assert "dead letters: ghost, phantom" in error(
        bd(team, "dlq", "resolve", sent["id"], "--recipient", "a2", "--json", env=A1),
        "not_found")["message"]
    one = ok(bd(team, "dlq", "resolve", sent["id"][:8], "--recipient", "ghost", "--note", "typo",
                "--json", env=A1))
    assert one["resolved"] == ["ghost"]
    assert [d["recipient"] for d in ok(bd(team, "dlq", "list", "--json"))] == ["phantom"]
    assert "resolved" in ok(bd(team, "dlq", "resolve", sent["id"], env=BOSS))
    assert ok(bd(team, "dlq", "list", "--json")) == []
    assert "empty" in ok(bd(team, "dlq", "list"))
    assert ok(bd(team, "where", "--json"))["records"]["dead_letter"] == 2


def test_audit_filters(team: Path, bd) -> None:
    ok(send(bd, team, A1, "a2", subject="first"))
    ok(bd(team, "agent", "heartbeat", "--identity", "a1"))
    entries = ok(bd(team, "audit", "--json"))
    assert entries[0]["action"] == "message.send" and entries[0]["actor"] == "a1"
    assert entries[0]["target"] == "a2" and entries[0]["detail"] == "first"
    assert re.fullmatch(r"\.beads/log/[0-9a-z]{12}/[0-9-]+\.jsonl:6", entries[0]["where"])
    assert [e["action"] for e in entries[1:]] == ["agent.register"] * 4
    mine = ok(bd(team, "audit", "--agent", "a1", "--json"))
    assert [e["action"] for e in mine] == ["message.send"]
    assert ok(bd(team, "audit", "--action", "agent", "--limit", "2", "--json"))[0]["target"] == "a3"
    assert len(ok(bd(team, "audit", "--action", "agent.register", "--json"))) == 4
    assert ok(bd(team, "audit", "--since", "2999-01-01", "--json")) == []
    assert len(ok(bd(team, "audit", "--since", "1h", "--json"))) == 5
    assert "message.send" in ok(bd(team, "audit"))
    for args, words in ((("--action", "gossip"), "unknown action"), (("--since", "someday"), "time"),
                        (("--agent", "a b"), "agent"), (("--limit", "0"), "--limit")):
        assert words in error(bd(team, "audit", *args, "--json"), "invalid_input")["message"]


def test_status_overview(team: Path, bd) -> None:
    ok(send(bd, team, A1, "boss", "ghost"))
    ok(bd(team, "channel", "create", "ops", env=BOSS))
    created = ok(bd(team, "task", "create", "--title", "review me", "--json", env=BOSS))["task"]
    ok(bd(team, "task", "status", created["id"], "review", "--version", str(created["version"]),
          "--json", env=BOSS))
    overview = ok(bd(team, "status", "--json", env=BOSS))
    assert overview["identity"] == "boss" and overview["unread"] == 1
    assert [a["id"] for a in overview["agents"]] == ["a1", "a2", "a3", "boss"]
    assert all(a["liveness"] == "alive" for a in overview["agents"])
    channels = {c["name"]: c for c in overview["channels"]}
    assert channels["ops"]["members"] == 1 and channels["review-queue"]["messages"] == 1
    assert overview["dead_letters"] == 1 and overview["dead_letter_recipients"] == ["ghost"]
    assert overview["review_queue"] == 1
    text = ok(bd(team, "status", env=BOSS))
    assert "review queue: 1" in text and "dead letters: 1" in text


def test_no_dead_letters_before_anyone_registers(repo, bd) -> None:
    """A fresh store without a roster: mail to any identity is simply mail."""
    ok(bd(repo, "init"))
    sent = bd(repo, "mail", "send", "worker-1", "-s", "hi", "-m", "x", "--json",
              env={"BEADS_IDENTITY": "manager"})
    assert sent.code == 0 and "dead letter" not in sent.err
    assert ok(bd(repo, "dlq", "list", "--json", env={"BEADS_IDENTITY": "manager"})) == []
    inbox = ok(bd(repo, "mail", "inbox", "--json", env={"BEADS_IDENTITY": "worker-1"}))
    assert [m["subject"] for m in inbox] == ["hi"]


# -- misaddressed mail: the JSON says so, and --strict refuses it -------------------------

def store_state(repo: Path) -> tuple[str, str]:
    """The store ref and the object count: what a refused send must leave as it was."""
    from conftest import git

    return git(repo, "rev-parse", "refs/heads/beadsmail"), git(repo, "count-objects", "-v")


def test_misaddressed_mail_names_its_dead_letters_in_the_json(team: Path, bd) -> None:
    result = send(bd, team, BOSS, "a22", "@nobdy", "a1")
    sent = ok(result)
    assert [(d["recipient"], d["reason"]) for d in sent["dead_letters"]] == [
        ("a22", "unknown"), ("@nobdy", "empty group")]
    assert "a2" in sent["dead_letters"][0]["did_you_mean"]
    assert len(sent["warnings"]) == 2 and "a22 is not a registered agent" in sent["warnings"][0]
    assert "a22 is not a registered agent" in result.err  # and said on stderr
    clean = ok(send(bd, team, BOSS, "a1", "@core", "#review-queue"))
    assert clean["dead_letters"] == [] and clean["warnings"] == []
    ok(bd(team, "agent", "unregister", "a3", env=BOSS))
    parent = ok(send(bd, team, {"BEADS_IDENTITY": "a3"}, "boss"))
    answer = ok(bd(team, "mail", "reply", parent["id"], "-m", "ok", "--json", env=BOSS))
    assert [(d["recipient"], d["reason"]) for d in answer["dead_letters"]] == [("a3", "unregistered")]
    posted = ok(bd(team, "channel", "post", "review-queue", "-m", "hi", "--json", env=A1))
    assert posted["dead_letters"] == [] and posted["warnings"] == []


def test_text_mode_warns_on_stderr_only(team: Path, bd) -> None:
    result = bd(team, "mail", "send", "a22", "-s", "hi", "-m", "x", env=BOSS)
    assert result.code == 0 and "a22 is not a registered agent" in result.err
    assert "dead" not in result.out and "warning" not in result.out


@pytest.mark.parametrize("how", ["flag", "config"])
def test_strict_refuses_misaddressed_mail_and_stores_nothing(team: Path, bd, how: str) -> None:
    strict = ["--strict"] if how == "flag" else []
    if how == "config":
        (team / ".beads" / "config.yaml").write_text("mail:\n  strict: true\n")
    before = store_state(team)
    refused = bd(team, "mail", "send", "a1", "a22", "#revew-queue", "-s", "hi", "-m", "x",
                 *strict, "--json", env=BOSS)
    err = error(refused, "misaddressed")
    assert "a22 (did you mean a2" in err["message"] and "#revew-queue" in err["message"]
    assert [d["recipient"] for d in err["dead_letters"]] == ["a22", "#revew-queue"]
    text = bd(team, "mail", "send", "a22", "-s", "hi", "-m", "x", *strict, env=BOSS)
    assert text.code == 1 and text.out == "" and len(text.err.splitlines()) == 1
    assert text.err.startswith("error: strict addressing refused") and "a22" in text.err
    assert store_state(team) == before  # nothing written: no commit, no object
    assert ok(bd(team, "dlq", "list", "--json")) == []
    parent = ok(send(bd, team, A1, "boss", *strict))  # well addressed: sent as usual
    ok(bd(team, "agent", "unregister", "a1", env=BOSS))
    error(bd(team, "mail", "reply", parent["id"], "-m", "x", *strict, "--json", env=BOSS),
          "misaddressed")
    if how == "config":  # --no-strict sends it anyway, as a dead letter
        sent = ok(send(bd, team, BOSS, "a22", "--no-strict"))
        assert [d["recipient"] for d in sent["dead_letters"]] == ["a22"]


def test_the_server_and_mcp_send_paths_report_dead_letters(team: Path) -> None:
    from beadsmail.integrations import surface
    from beadsmail.server import api
    from beadsmail.workspace import Workspace

    ws = Workspace.open(str(team))
    sent = surface.send(ws, "boss", ["a22"], "hi", "x")
    assert [d["recipient"] for d in sent["dead_letters"]] == ["a22"] and sent["warnings"]
    route = next(r for r in api.ROUTES if r.op == "send")
    posted = route.fn(ws, "boss", {}, {"to": "@nobdy", "body": "x"})
    assert [d["reason"] for d in posted["dead_letters"]] == ["empty group"]
    from beadsmail.errors import Misaddressed

    with pytest.raises(Misaddressed):
        route.fn(ws, "boss", {}, {"to": ["a1", "a22"], "body": "x", "strict": True})
    assert api.STATUS_CODES["misaddressed"] == 422
