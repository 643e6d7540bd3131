"""Groups (btmsg's ``group_id``/``sender_group_id``): what messages and channels carry, and
what views scoped to a group show, through bd, btmsg, bttask and ``bd serve``'s ``?group=``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import websockets
from shell import js, ok, sh

from beadsmail import agents, channels, groups, mail, tasks
from beadsmail.compat import btmsg, bttask
from beadsmail.errors import InvalidInput, NotFound, PermissionDenied
from beadsmail.server.runner import Background
from beadsmail.workspace import Workspace


@pytest.fixture
def ws(repo: Path, bd):
    """Two teams: ``red`` (manager red-mgr, tester red-1) and ``blue`` (manager blue-mgr,
    tester blue-1); ``human`` is in no group."""
    assert bd(repo, "init").code == 0
    w = Workspace.open(repo)
    agents.register(w, "red-mgr", "red-mgr", role="manager", group="red")
    agents.register(w, "red-mgr", "red-1", role="tester", group="red")
    agents.register(w, "red-mgr", "blue-mgr", role="manager", group="blue")
    agents.register(w, "red-mgr", "blue-1", role="tester", group="blue")
    agents.register(w, "red-mgr", "human", role="manager")
    yield w
    w.close()


def _raw(ws, record_id: str) -> dict:
    return ws.index.record(record_id)


def test_every_message_record_carries_the_senders_group(ws) -> None:
    """bd mail, channel posts, task review posts and btmsg all stamp ``sender_group``."""
    sent = mail.send(ws, "red-1", ["blue-1"], "hi", "hello")
    posted = channels.post(ws, "blue-1", "review-queue", "look")
    loose = mail.send(ws, "human", ["*"], "all", "hands")
    row, _ = btmsg.send(ws, "blue-mgr", {"--to": "red-1", "--content": "x"}, [])
    task = tasks.create(ws, "red-mgr", "Fix it", "", "high")["task"]
    moved = tasks.move(ws, "red-mgr", task["id"], "review", task["version"])
    review = moved["posted"][0]["message"]
    assert _raw(ws, sent["id"])["sender_group"] == "red" == sent["sender_group"]
    assert _raw(ws, posted["id"])["sender_group"] == "blue" == posted["sender_group"]
    assert _raw(ws, loose["id"])["sender_group"] is None  # the field is there, null
    assert "sender_group" in _raw(ws, loose["id"])
    assert _raw(ws, row["id"])["sender_group"] == "blue" == row["sender_group_id"]
    assert _raw(ws, row["id"])["metadata"] == {}
    assert _raw(ws, review)["sender_group"] == "red"
    # the group when sent, not now: moving an agent later does not rewrite history
    agents.register(ws, "red-mgr", "red-1", group="blue", update=True)
    assert mail.show(ws, sent["id"], thread=True)[0]["sender_group"] == "red"


def test_old_records_read_btmsgs_metadata_and_guess_nothing(ws) -> None:
    from helpers import message_fields

    old = message_fields("red-1", to=("red-mgr",), metadata={"sender_group_id": "red"})
    bare = message_fields("red-1", to=("red-mgr",))
    written = ws.write("red-1", [("message", {**old, "sender_group": None}),
                                 ("message", bare)], "old shapes")
    # (a record written before the field existed has no key at all)
    for rec in written.records:
        rec.pop("sender_group", None)
    from beadsmail.records import sender_group

    assert sender_group(written.records[0]) == "red"
    assert sender_group(written.records[1]) is None
    assert sender_group({"metadata": {"sender_group_id": "not valid!"}}) is None


def test_channels_belong_to_a_group_and_listings_are_scoped(ws) -> None:
    red = channels.create(ws, "red-mgr", "red-room")
    blue = channels.create(ws, "red-mgr", "blue-room", group="blue")
    shared = channels.create(ws, "human", "lobby")
    assert (red["group"], blue["group"], shared["group"]) == ("red", "blue", None)
    names = {g: [c["name"] for c in channels.list_channels(ws, g)] for g in ("red", "blue")}
    assert names["red"] == ["lobby", "red-room", "review-log", "review-queue"]
    assert names["blue"] == ["blue-room", "lobby", "review-log", "review-queue"]
    assert len(channels.list_channels(ws)) == 5  # unscoped: every channel
    with pytest.raises(NotFound, match="belongs to group red"):
        channels.read(ws, "red-room", group="blue")
    channels.post(ws, "red-1", "lobby", "red says")
    channels.post(ws, "blue-1", "lobby", "blue says")
    channels.post(ws, "human", "lobby", "human says")
    seen = {g: [m["body"] for m in channels.read(ws, "lobby", group=g)["messages"]]
            for g in ("red", "blue", None)}
    assert seen == {"red": ["red says", "human says"], "blue": ["blue says", "human says"],
                    None: ["red says", "blue says", "human says"]}
    lobby = {c["name"]: c for c in channels.list_channels(ws, "red")}["lobby"]
    assert lobby["messages"] == 2


def test_an_unknown_or_invalid_group_is_refused_not_ignored(ws) -> None:
    tasks.create(ws, "human", "ungrouped-team task", "", "low", group="green")
    assert groups.require(ws.index.conn, "green") == "green"  # known through a task
    for call in (lambda g: channels.list_channels(ws, g), lambda g: agents.list_agents(ws, group=g),
                 lambda g: tasks.listing(ws, group=g), lambda g: tasks.board(ws, g),
                 lambda g: mail.inbox(ws, "red-1", group=g),
                 lambda g: channels.read(ws, "review-queue", group=g)):
        with pytest.raises(InvalidInput, match="unknown group 'purple': known groups are "
                                               "blue, green, red"):
            call("purple")
        with pytest.raises(InvalidInput, match="invalid group"):
            call("no spaces")


def test_btmsg_views_are_scoped_to_the_callers_group(ws) -> None:
    mail.send(ws, "blue-mgr", ["*"], "blue news", "for everyone")
    mail.send(ws, "red-mgr", ["*"], "red news", "for everyone")
    mail.send(ws, "human", ["*"], "operator", "for everyone")
    dm, _ = btmsg.send(ws, "blue-mgr", {"--to": "red-1", "--content": "direct"}, [])
    rows, _ = btmsg.read(ws, "red-1", {}, [])
    assert sorted(r["content"] for r in rows) == ["direct", "for everyone", "for everyone"]
    assert {r["from_agent"] for r in rows} == {"red-mgr", "human", "blue-mgr"}
    assert [r["id"] for r in rows if r["from_agent"] == "blue-mgr"] == [dm["id"]]  # the DM only
    assert btmsg.unread(ws, "blue-1", {}, [])[0] == 2  # blue news and the operator's
    status, _ = btmsg.status(ws, "red-1", {}, [])
    assert sorted(r["id"] for r in status) == ["red-1", "red-mgr"]
    assert {r["id"] for r in btmsg.status(ws, None, {}, [])[0]} >= {"blue-1", "red-1"}
    channels.create(ws, "blue-mgr", "blue-room")
    listed, _ = btmsg.channel_list(ws, "red-1", {}, [])
    assert "#blue-room" not in [c["name"] for c in listed]
    assert {c["name"]: c["group_id"] for c in btmsg.channel_list(ws, "blue-1", {}, [])[0]}[
        "#blue-room"] == "blue"
    with pytest.raises(NotFound):
        btmsg.channel_history(ws, "red-1", {}, ["blue-room"])


def test_btmsg_feed_is_the_groups_traffic_for_managers_only(ws) -> None:
    btmsg.send(ws, "red-1", {"--to": "red-mgr", "--content": "one"}, [])
    btmsg.send(ws, "blue-1", {"--to": "blue-mgr", "--content": "two"}, [])
    channels.post(ws, "red-mgr", "review-queue", "three")
    rows, text = btmsg.feed(ws, "red-mgr", {}, [])
    assert [r["content"] for r in rows] == ["one", "three"]
    assert all(r["sender_group_id"] == "red" for r in rows) and "Activity feed" in text
    with pytest.raises(PermissionDenied, match="mail.read.others"):
        btmsg.feed(ws, "red-1", {}, [])
    assert [r["content"] for r in btmsg.feed(ws, "red-mgr", {"--limit": "1"}, [])[0]] == ["three"]


def test_bttask_lists_the_callers_groups_tasks(ws) -> None:
    tasks.create(ws, "red-mgr", "red work", "", "high")
    tasks.create(ws, "blue-mgr", "blue work", "", "high")
    assert [t["title"] for t in bttask.listing(ws, "red-1", {}, [])[0]] == ["red work"]
    assert [t["title"] for t in bttask.listing(ws, "red-1", {"--group": "blue"}, [])[0]] == [
        "blue work"]
    assert len(bttask.listing(ws, None, {}, [])[0]) == 2


def test_the_btmsg_command_line_shows_groups(ws, repo: Path) -> None:
    ok(sh(repo, "btmsg register --id red-2 --name Red2 --role project --group red",
          BTMSG_AGENT_ID="red-mgr"))
    ok(sh(repo, "btmsg channel create red-ops", BTMSG_AGENT_ID="red-mgr"))
    listed = js(sh(repo, "btmsg channels --json", BTMSG_AGENT_ID="red-2"))
    assert {c["name"]: c["group_id"] for c in listed}["#red-ops"] == "red"
    blue = js(sh(repo, "btmsg channels --json", BTMSG_AGENT_ID="blue-1"))
    assert "#red-ops" not in {c["name"] for c in blue}
    ok(sh(repo, 'btmsg channel-post --channel red-ops --content "hi team"',
          BTMSG_AGENT_ID="red-2"))
    history = js(sh(repo, "btmsg channel history red-ops --json", BTMSG_AGENT_ID="red-mgr"))
    assert [(m["content"], m["sender_group_id"]) for m in history] == [("hi team", "red")]
    refused = sh(repo, "btmsg channel history red-ops", BTMSG_AGENT_ID="blue-1")
    assert refused.code == 1 and "belongs to group red" in refused.err


# -- bd serve: ?group= ---------------------------------------------------------------

@pytest.fixture
def served(ws):
    channels.create(ws, "red-mgr", "red-room")
    channels.create(ws, "blue-mgr", "blue-room")
    mail.send(ws, "red-1", ["*"], "red", "from red")
    mail.send(ws, "blue-1", ["*"], "blue", "from blue")
    mail.send(ws, "blue-1", ["red-1"], "dm", "blue to red, direct")
    channels.post(ws, "human", "review-queue", "from the operator")
    tasks.create(ws, "red-mgr", "red task", "", "high")
    tasks.create(ws, "blue-mgr", "blue task", "", "high")
    own = Workspace.open(ws.loc.worktree)  # the server's own (it runs in another thread)
    with Background(own, identity="human", projects=["proj"]) as bg:
        yield bg
    own.close()


def _get(bg, path: str, **params) -> httpx.Response:
    return httpx.get(bg.url + path, params=params, timeout=120)


def test_group_is_honoured_on_every_listing_route(served) -> None:
    bodies = [m["body"] for m in _get(served, "/api/messages", group="red").json()]
    assert bodies == ["from red"]
    assert len(_get(served, "/api/messages").json()) == 4
    names = [c["name"] for c in _get(served, "/api/channels", group="blue").json()]
    assert "blue-room" in names and "red-room" not in names and "review-queue" in names
    queue = _get(served, "/api/channels/review-queue", group="red").json()
    assert [m["body"] for m in queue["messages"]] == ["from the operator"]
    assert _get(served, "/api/channels/red-room", group="blue").status_code == 404
    assert [a["id"] for a in _get(served, "/api/agents", group="blue").json()] == [
        "blue-1", "blue-mgr"]
    assert [t["title"] for t in _get(served, "/api/tasks", group="red").json()] == ["red task"]
    board = _get(served, "/api/board", group="blue").json()
    assert [t["title"] for c in board["columns"] for t in c["tasks"]] == ["blue task"]
    inbox = _get(served, "/api/inbox", agent="red-1", group="red").json()
    assert sorted(m["body"] for m in inbox) == ["blue to red, direct"]  # (red's own * skipped)


@pytest.mark.parametrize("path", ["/api/messages", "/api/channels", "/api/agents",
                                  "/api/tasks", "/api/board", "/api/inbox",
                                  "/api/channels/review-queue"])
def test_an_unknown_group_is_a_400_on_every_route(served, path: str) -> None:
    for value, words in (("purple", "unknown group 'purple': known groups are blue, red"),
                         ("no/such", "invalid group")):
        answer = _get(served, path, group=value)
        assert answer.status_code == 400, (path, answer.text)
        error = answer.json()["error"]
        assert error["type"] == "invalid_input" and words in error["message"], error


def test_a_query_parameter_a_route_does_not_take_is_a_400(served) -> None:
    answer = _get(served, "/api/status", group="red")
    assert answer.status_code == 400
    assert "does not take the query parameter 'group'" in answer.json()["error"]["message"]
    assert _get(served, "/api/agents", grup="red").status_code == 400
    assert "group" in json.dumps(httpx.get(served.url + "/openapi.json").json()["paths"][
        "/api/messages"])


def test_watch_with_a_group_pushes_that_groups_messages(served, ws) -> None:
    async def scenario() -> tuple[list[str], dict]:
        url = f"{served.ws_url}/ws/watch/proj"
        async with websockets.connect(url + "?group=nosuch") as bad:
            refused = json.loads(await asyncio.wait_for(bad.recv(), 60))
        async with websockets.connect(url + "?group=red") as sock:
            assert json.loads(await asyncio.wait_for(sock.recv(), 60))["type"] == "welcome"
            await asyncio.to_thread(mail.send, ws, "blue-1", ["*"], "b", "blue again")
            await asyncio.to_thread(mail.send, ws, "red-1", ["*"], "r", "red again")
            seen = []
            while "red again" not in seen:
                frame = json.loads(await asyncio.wait_for(sock.recv(), 60))
                record = frame.get("record") or {}
                if record.get("kind") == "message":
                    seen.append(record["body"])
            return seen, refused

    seen, refused = asyncio.run(scenario())
    assert seen == ["red again"]
    assert refused["type"] == "error" and "unknown group" in refused["error"]["message"]


def test_a_message_from_the_websocket_bus_carries_the_senders_group(served, ws) -> None:
    """Spec 13's frame, sent by an agent of group blue, is stored with ``sender_group``."""
    async def scenario() -> str:
        url = f"{served.ws_url}/ws/agent/messages/proj?agent_id=blue-1"
        async with websockets.connect(url) as sock:
            assert json.loads(await asyncio.wait_for(sock.recv(), 60))["type"] == "welcome"
            await sock.send(json.dumps({"type": "status", "content": "blue on the bus"}))
            while True:
                frame = json.loads(await asyncio.wait_for(sock.recv(), 60))
                if frame["type"] == "sent":
                    return frame["id"]

    mid = asyncio.run(scenario())
    ws.refresh()
    assert ws.index.record(mid)["sender_group"] == "blue"
    log = _get(served, "/api/messages", group="blue").json()
    assert mid in [m["id"] for m in log]
