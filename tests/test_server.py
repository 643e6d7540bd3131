"""bd serve: real WebSocket and HTTP clients on loopback against a real repository."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx as _httpx
import pytest
import websockets
from conftest import git

from beadsmail import tokens
from beadsmail.server.hub import Limits
from beadsmail.server.runner import Background
from beadsmail.workspace import Workspace

httpx = _httpx.Client(timeout=120)  # a loaded machine answers slowly, never wrongly

PROJECT = "proj"


@pytest.fixture
def store(repo: Path, bd) -> Path:
    assert bd(repo, "init").code == 0
    return repo


@pytest.fixture
def server(store: Path):
    ws = Workspace.open(store)
    with Background(ws, identity="human", projects=[PROJECT],
                    limits=Limits(rate=200, burst=60, max_refused=40)) as bg:
        yield bg
    ws.close()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One server for the tests that only read or are refused (they change nothing)."""
    from conftest import make_repo, run_bd

    repo = make_repo(tmp_path_factory.mktemp("shared") / "repo")
    assert run_bd(repo, "init").code == 0
    ws = Workspace.open(repo)
    with Background(ws, identity="human", projects=[PROJECT]) as bg:
        yield bg
    ws.close()


class Client:
    """A WebSocket agent with helpers to wait for frames of a type."""

    def __init__(self, sock) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, bg: Background, agent: str, since: str | None = None,
                      project: str = PROJECT, ready: bool = True, **kw) -> Client:
        url = f"{bg.ws_url}/ws/agent/messages/{project}?agent_id={agent}"
        if since:
            url += f"&since={since}"
        client = cls(await websockets.connect(url, **kw))
        if ready:
            welcome = await client.next()
            assert welcome["type"] == "welcome", welcome
        return client

    async def next(self, timeout: float = 60) -> dict:
        return json.loads(await asyncio.wait_for(self.sock.recv(), timeout))

    async def until(self, kind: str, timeout: float = 60) -> tuple[dict, list[dict]]:
        """The first frame of ``kind``, and the frames before it."""
        before = []
        while True:
            frame = await self.next(timeout)
            if frame["type"] == kind:
                return frame, before
            before.append(frame)

    async def send(self, **frame) -> None:
        await self.sock.send(json.dumps(frame))

    async def silent(self, seconds: float = 0.3) -> bool:
        try:
            await asyncio.wait_for(self.sock.recv(), seconds)
        except TimeoutError:
            return True
        return False

    async def close(self) -> None:
        await self.sock.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 600))


def messages(frames: list[dict]) -> list[dict]:
    return [f["message"] for f in frames if f["type"] == "message"]


# -- the bus ------------------------------------------------------------------------

def test_two_agents_exchange_and_a_late_third_gets_its_queue(server, store, bd) -> None:
    async def scenario():
        alice = await Client.connect(server, "alice")
        bob = await Client.connect(server, "bob")
        await alice.until("ready")
        await bob.until("ready")
        await alice.send(type="status", content="build is green", metadata={"ci": 42}, ref="a1")
        sent, _ = await alice.until("sent")
        assert sent["ref"] == "a1" and sent["message"]["to"] == [f"#{PROJECT}"]
        got = (await bob.until("message"))[0]
        assert got["message"]["id"] == sent["id"] and got["message"]["metadata"] == {"ci": 42}
        assert got["message"]["from"] == "alice" and got["queued"] is False
        await bob.send(type="request", content="please review", to="alice",
                       subject="review?", reply_to=sent["id"], ref=7)
        reply = (await bob.until("sent"))[0]
        back = (await alice.until("message"))[0]["message"]
        assert back["id"] == reply["id"] and back["thread_id"] == sent["id"]
        assert back["type"] == "request" and back["priority"] == 1
        # carol was never connected: a direct message waits for her
        await alice.send(type="coordination", content="carol, take the docs", to=["carol"])
        queued_id = (await alice.until("sent"))[0]["id"]
        assert await bob.silent()  # not for bob
        carol = await Client.connect(server, "carol")
        first = await carol.next()
        assert first["type"] == "message" and first["queued"] is True
        assert first["message"]["id"] == queued_id
        ready = (await carol.until("ready"))[0]
        assert ready["queued"] == 1
        for c in (alice, bob, carol):
            await c.close()
        return sent["id"]

    first_id = run(scenario())
    inbox = bd(store, "mail", "inbox", "--identity", "bob", "--json").json()
    assert first_id in [m["id"] for m in inbox]  # the bus stores real mail


def test_cli_send_in_a_worktree_reaches_a_connected_client(server, worktrees, bd_proc) -> None:
    async def scenario():
        bob = await Client.connect(server, "bob")
        await bob.until("ready")
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, lambda: bd_proc(
            worktrees[1], "mail", "send", "bob", "-s", "from wt1", "-m", "hello",
            "--identity", "alice", "--json"))
        assert result.code == 0, result.err
        sent_id = json.loads(result.out)["id"]
        frame = (await bob.until("message"))[0]
        assert frame["message"]["id"] == sent_id
        await bob.close()

    run(scenario())


def test_records_arriving_by_a_raw_ref_move_are_pushed(server, store, tmp_path) -> None:
    """Another clone's records arriving with `git fetch` into the store ref reach clients."""
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(store), str(other))
    git(other, "fetch", "-q", "origin", "beadsmail:beadsmail")
    ws = Workspace.open(other)
    from helpers import write_message

    async def scenario():
        bob = await Client.connect(server, "bob")
        await bob.until("ready")
        record = await asyncio.get_running_loop().run_in_executor(
            None, lambda: write_message(ws, "zed", to=("bob",)))
        git(store, "fetch", "-q", str(other), "beadsmail:refs/remotes/other/beadsmail")
        frame = (await bob.until("message"))[0]
        assert frame["message"]["id"] == record["id"]
        await bob.close()

    run(scenario())
    ws.close()


def test_killed_client_resumes_without_loss_or_duplicates(server) -> None:
    async def scenario():
        bob = await Client.connect(server, "bob")
        await bob.until("ready")
        alice = await Client.connect(server, "alice")
        await alice.until("ready")
        ids = []
        for i in range(3):
            await alice.send(type="status", content=f"before {i}", to="bob")
            ids.append((await alice.until("sent"))[0]["id"])
        seen = [(await bob.until("message"))[0]["message"]["id"] for _ in range(3)]
        assert seen == ids
        bob.sock.transport.abort()  # killed: no close frame
        for i in range(4):
            await alice.send(type="status", content=f"away {i}", to="bob")
            ids.append((await alice.until("sent"))[0]["id"])
        again = await Client.connect(server, "bob", since=seen[-1])
        ready, before = await again.until("ready")
        assert [m["id"] for m in messages(before)] == ids[3:]
        assert ready["queued"] == 4
        await alice.send(type="status", content="live", to="bob")
        live_id = (await alice.until("sent"))[0]["id"]
        frame = (await again.until("message"))[0]
        assert frame["message"]["id"] == live_id and frame["queued"] is False
        await again.close()
        # without since: what was queued after the last push (nothing new here)
        await alice.send(type="status", content="while away", to="bob")
        away_id = (await alice.until("sent"))[0]["id"]
        third = await Client.connect(server, "bob")
        ready, before = await third.until("ready")
        assert [m["id"] for m in messages(before)] == [away_id]
        await third.close()
        await alice.close()

    run(scenario())


def test_a_registered_agent_on_the_bus_is_alive(server, store, bd) -> None:
    assert bd(store, "agent", "register", "--id", "alice", "--role", "manager",
              "--identity", "alice").code == 0
    before = bd(store, "agent", "show", "alice", "--json").json()["last_seen"]
    time.sleep(0.01)

    async def scenario():
        alice = await Client.connect(server, "alice")
        await alice.until("ready")
        connected = httpx.get(server.url + "/api/info").json()["connected"]
        await alice.close()
        return connected

    assert run(scenario()) == ["alice"]
    after = bd(store, "agent", "show", "alice", "--json").json()
    assert after["last_seen"] > before and after["liveness"] == "alive"


def test_resume_from_an_unknown_id_is_refused(shared_server) -> None:
    async def scenario():
        client = await Client.connect(shared_server, "bob", since="bd-zzzzzzzzzzzzz", ready=False)
        frame = await client.next()
        assert frame["type"] == "error" and "since" in frame["error"]["message"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.next()
        assert closed.value.rcvd.code == 4400

    run(scenario())


# -- bad frames ---------------------------------------------------------------------

def test_bad_frames_get_errors_and_the_server_stays_up(server) -> None:
    async def scenario():
        bad = await Client.connect(server, "mallory")
        good = await Client.connect(server, "bob")
        await bad.until("ready")
        await good.until("ready")
        cases = [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"),
                 (json.dumps({"type": "shout", "content": "x"}), "unknown frame type"),
                 (json.dumps({"type": "status"}), "no text"),
                 (json.dumps({"type": "status", "content": "x", "colour": 1}), "unknown field"),
                 (json.dumps({"type": "status", "content": "x", "to": "bad name!"}),
                  "invalid recipient"),
                 (json.dumps({"type": "status", "content": "x", "priority": 9}), "priority"),
                 (json.dumps({"type": "status", "content": "x", "from": "bob"}),
                  "cannot send as")]
        for text, words in cases:
            await bad.sock.send(text)
            frame, _ = await bad.until("error")
            assert words in frame["error"]["message"], (text, frame)
        await bad.sock.send(b"\x00binary")
        assert "binary" in (await bad.until("error"))[0]["error"]["message"]
        await bad.send(type="ping", ref="p")
        assert (await bad.until("pong"))[0]["ref"] == "p"  # still connected
        # oversize: the transport closes with 1009, others carry on
        huge = await Client.connect(server, "huge")
        await huge.until("ready")
        await huge.sock.send(json.dumps({"type": "status", "content": "x" * 300_000}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await huge.until("sent")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        await bad.send(type="status", content="still here", to="bob")
        assert (await good.until("message"))[0]["message"]["body"] == "still here"
        for c in (bad, good):
            await c.close()

    run(scenario())
    assert httpx.get(server.url + "/api/info").status_code == 200


@pytest.fixture
def slow_server(store: Path):
    """A server that refills a client's frame budget slowly: a flood of 200 frames exceeds it
    however slowly this machine runs the client and the server."""
    ws = Workspace.open(store)
    with Background(ws, identity="human", projects=[PROJECT],
                    limits=Limits(rate=0.5, burst=60, max_refused=40)) as bg:
        yield bg
    ws.close()


def test_a_flooding_client_is_limited_then_closed_others_unaffected(slow_server) -> None:
    server = slow_server

    async def scenario():
        flood = await Client.connect(server, "flood")
        bob = await Client.connect(server, "bob")
        await flood.until("ready")
        await bob.until("ready")
        for i in range(200):
            await flood.send(type="ping", ref=i)
        limited = closed = 0
        try:
            while True:
                frame = await flood.next()
                limited += frame["type"] == "error" and frame["error"]["type"] == "rate_limited"
        except websockets.ConnectionClosed as exc:
            closed = exc.rcvd.code
        assert limited >= 1 and closed == 1008
        alice = await Client.connect(server, "alice")
        await alice.until("ready")
        await alice.send(type="status", content="after the flood", to="bob")
        assert (await bob.until("message"))[0]["message"]["body"] == "after the flood"
        for c in (alice, bob):
            await c.close()

    run(scenario())


def test_ack_and_read_frames(server, store, bd) -> None:
    async def scenario():
        alice = await Client.connect(server, "alice")
        bob = await Client.connect(server, "bob")
        await alice.until("ready")
        await bob.until("ready")
        await alice.send(type="request", content="ack me", to="bob")
        mid = (await bob.until("message"))[0]["message"]["id"]
        await bob.send(type="read", id=mid[:8], ref="r")
        read = (await bob.until("read"))[0]
        assert read["message"]["state"] == "read" and read["ref"] == "r"
        await bob.send(type="ack", ids=[mid, "bd-nope"])
        acked = (await bob.until("acked"))[0]
        assert acked["acknowledged"] == [mid] and acked["errors"][0]["id"] == "bd-nope"
        await bob.send(type="ack")
        assert "ids" in (await bob.until("error"))[0]["error"]["message"]
        for c in (alice, bob):
            await c.close()

    run(scenario())
    assert bd(store, "mail", "inbox", "--identity", "bob", "--json").json() == []


def test_unknown_project_is_closed_with_4404(shared_server) -> None:
    async def scenario():
        client = await Client.connect(shared_server, "bob", project="nope", ready=False)
        frame = await client.next()
        assert frame["error"]["type"] == "not_found" and PROJECT in frame["error"]["message"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.next()
        assert closed.value.rcvd.code == 4404

    run(scenario())


# -- security -----------------------------------------------------------------------

def test_foreign_origin_and_host_are_refused(shared_server) -> None:
    url = f"{shared_server.ws_url}/ws/agent/messages/{PROJECT}?agent_id=bob"

    async def handshake(origin):
        async with websockets.connect(url, origin=origin) as sock:
            return json.loads(await sock.recv())["type"]

    with pytest.raises(websockets.InvalidStatus) as refused:
        run(handshake("http://evil.example"))
    assert refused.value.response.status_code == 403
    assert run(handshake(shared_server.url)) == "welcome"  # the page's own origin
    r = httpx.post(shared_server.url + "/api/messages", json={"to": "bob", "body": "x"},
                   headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "origin" in r.json()["error"]["message"]
    r = httpx.get(shared_server.url + "/api/info", headers={"Host": "attacker.example"})
    assert r.status_code == 403 and "loopback" in r.json()["error"]["message"]


def test_tokens_decide_identity_when_required(store, bd) -> None:
    ws = Workspace.open(store)
    made = tokens.create(ws.loc.state_dir, "w1")
    with Background(ws, identity="human", projects=[PROJECT], require_tokens=True) as bg:
        assert httpx.get(bg.url + "/api/inbox").status_code == 401
        bad = httpx.get(bg.url + "/api/inbox", headers={"Authorization": "Bearer bdt_x_y"})
        assert bad.status_code == 403
        auth = {"Authorization": f"Bearer {made['token']}"}
        assert httpx.get(bg.url + "/api/info", headers=auth).json()["identity"] == "w1"
        r = httpx.post(bg.url + "/api/messages", headers={**auth, "X-Beads-Identity": "boss"},
                       json={"to": "bob", "body": "x"})
        assert r.status_code == 403 and "cannot act as boss" in r.json()["error"]["message"]
        r = httpx.post(bg.url + "/api/messages", headers=auth, json={"to": "bob", "body": "hi"})
        assert r.status_code == 200 and r.json()["from"] == "w1"

        async def sockets():
            base = f"{bg.ws_url}/ws/agent/messages/{PROJECT}"
            async with websockets.connect(f"{base}?agent_id=w1") as sock:
                assert json.loads(await sock.recv())["error"]["type"] == "permission_denied"
            async with websockets.connect(f"{base}?agent_id=w2&token={made['token']}") as sock:
                assert "cannot connect as w2" in json.loads(await sock.recv())["error"]["message"]
            async with websockets.connect(f"{base}?agent_id=w1&token={made['token']}") as sock:
                assert json.loads(await sock.recv())["type"] == "welcome"

        run(sockets())
        tokens.revoke(ws.loc.state_dir, made["id"])
        assert httpx.get(bg.url + "/api/info", headers=auth).status_code == 403
    ws.close()


def test_token_commands(store, bd) -> None:
    made = bd(store, "agent", "token", "create", "w1", "--label", "ci box", "--json").json()
    assert made["agent"] == "w1" and made["token"].startswith("bdt_")
    listed = bd(store, "agent", "token", "list", "--json").json()
    assert [t["id"] for t in listed] == [made["id"]] and "token" not in listed[0]
    state = Path(git(store, "rev-parse", "--git-common-dir").strip())
    state = (store / state if not state.is_absolute() else state) / "beadsmail" / "tokens.json"
    secret = made["token"].split("_", 2)[2]
    assert secret not in state.read_text() and oct(state.stat().st_mode)[-3:] == "600"
    assert "tokens" not in git(store, "ls-tree", "-r", "--name-only", "beadsmail")
    assert bd(store, "agent", "token", "revoke", made["id"][:4], "--json").json()["revoked_at"]
    assert bd(store, "agent", "token", "list", "--json").json() == []
    assert len(bd(store, "agent", "token", "list", "--all", "--json").json()) == 1
    missing = bd(store, "agent", "token", "revoke", "ffffffff", "--json")
    assert missing.code == 1 and missing.json()["error"]["type"] == "not_found"
    bad = bd(store, "agent", "token", "create", "no/slash", "--json")
    assert bad.code == 1 and bad.json()["error"]["type"] == "invalid_input"


def test_serve_refuses_a_public_address_without_tokens(store, bd) -> None:
    result = bd(store, "serve", "--host", "0.0.0.0", "--port", "0", "--json")
    assert result.code == 1
    assert "requires agent tokens" in result.json()["error"]["message"]


def test_serve_without_the_extra_names_it(store, bd, monkeypatch) -> None:
    import beadsmail.server as server_pkg

    monkeypatch.setattr(server_pkg, "missing_stack", lambda: ["uvicorn"])
    result = bd(store, "serve", "--port", "0", "--json")
    assert result.code == 1 and "beadsmail[serve]" in result.json()["error"]["message"]


# -- HTTP API -----------------------------------------------------------------------

def test_http_api_does_what_the_cli_does(server, store, bd) -> None:
    s = _httpx.Client(timeout=120, base_url=server.url, headers={"X-Beads-Identity": "alice"})
    sent = s.post("/api/messages", json={"to": ["bob"], "subject": "plan", "body": "ship it",
                                         "type": "request"}).json()
    bob = {"X-Beads-Identity": "bob"}
    inbox = s.get("/api/inbox", headers=bob).json()
    assert [m["id"] for m in inbox] == [sent["id"]] and inbox[0]["state"] == "unread"
    assert s.get(f"/api/messages/{sent['id']}", headers=bob).json()["state"] == "unread"
    assert s.post(f"/api/messages/{sent['id'][:8]}/read", headers=bob).json()["state"] == "read"
    reply = s.post(f"/api/messages/{sent['id']}/reply", headers=bob,
                   json={"body": "done"}).json()
    assert reply["subject"] == "Re: plan" and reply["to"] == ["alice"]
    thread = s.get(f"/api/messages/{reply['id']}/thread").json()
    assert [m["id"] for m in thread] == [sent["id"], reply["id"]]
    assert s.post(f"/api/messages/{sent['id']}/ack", headers=bob).json()["acknowledged"] == \
        [sent["id"]]
    assert s.get("/api/inbox", headers=bob).json() == []
    assert bd(store, "mail", "inbox", "--identity", "alice", "--json").json()[0]["id"] == \
        reply["id"]
    log = s.get("/api/messages", params={"agent": "bob"}).json()
    assert [m["id"] for m in log] == [sent["id"], reply["id"]]
    assert any(c["name"] == PROJECT for c in s.get("/api/channels").json())
    posted = s.post(f"/api/channels/{PROJECT}/messages", json={"body": "hello all"}).json()
    assert s.get(f"/api/channels/{PROJECT}").json()["messages"][-1]["id"] == posted["id"]
    assert s.get("/api/messages", params={"channel": PROJECT}).json()[-1]["id"] == posted["id"]
    assert isinstance(s.get("/api/agents", params={"all": "true"}).json(), list)
    assert "review_queue" in s.get("/api/status").json()


def test_task_moves_with_version_and_conflicts(server) -> None:
    s = _httpx.Client(timeout=120, base_url=server.url, headers={"X-Beads-Identity": "human"})
    task = s.post("/api/tasks", json={"title": "write docs"}).json()["task"]
    assert task["status"] == "backlog" and task["version"] == 1
    moved = s.post(f"/api/tasks/{task['id']}/move", json={"status": "todo", "version": 1})
    assert moved.status_code == 200 and moved.json()["task"]["version"] == 2
    stale = s.post(f"/api/tasks/{task['id']}/move", json={"status": "review", "version": 1})
    assert stale.status_code == 409
    err = stale.json()["error"]
    assert err["type"] == "conflict" and err["current_version"] == 2
    board = s.get("/api/board").json()
    assert [c["status"] for c in board["columns"]] == ["backlog", "todo", "in_progress",
                                                       "review", "done"]
    assert board["columns"][1]["tasks"][0]["id"] == task["id"]
    assert s.get(f"/api/tasks/{task['id']}").json()["task"]["version"] == 2


@pytest.mark.parametrize("method, path, payload, status, words", [
    ("post", "/api/messages", {"to": "bob"}, 400, "body"),
    ("post", "/api/messages", {"to": "bob", "body": ""}, 400, "empty"),
    ("post", "/api/messages", {"to": "bob", "body": "x", "priority": 7}, 400, "priority"),
    ("post", "/api/messages", {"to": "bob", "body": "x", "extra": 1}, 400, "extra"),
    ("post", "/api/messages", "not an object", 400, "body"),
    ("get", "/api/messages/bd-zzzzzzzzzzzz", None, 404, "no message"),
    ("get", "/api/messages/x", None, 400, "not an id"),
    ("get", "/api/inbox?limit=abc", None, 400, "whole number"),
    ("get", "/api/inbox?unread=maybe", None, 400, "true or false"),
    ("post", "/api/tasks/bd-zzzzzzzzzzzz/move", {"status": "todo", "version": 1}, 404, "task"),
    ("post", "/api/tasks", {"title": "  "}, 400, "title"),
    ("get", "/api/channels/No Such", None, 400, "channel name"),
])
def test_http_bad_input_is_4xx_with_one_json_error(shared_server, method, path, payload, status,
                                                  words) -> None:
    kwargs = {} if payload is None else {"json": payload}
    r = getattr(httpx, method)(shared_server.url + path, **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"].lower() + r.json()["error"]["message"]


def test_malformed_json_body_is_400(shared_server) -> None:
    r = httpx.post(shared_server.url + "/api/messages", content=b"{nope",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_openapi_document_describes_the_api(shared_server) -> None:
    doc = httpx.get(shared_server.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/api/messages", "/api/inbox", "/api/messages/{id}/ack", "/api/tasks/{id}/move",
                 "/api/channels", "/api/agents", "/api/board"):
        assert path in doc["paths"], path
    move = doc["paths"]["/api/tasks/{id}/move"]["post"]
    assert move["requestBody"]["content"]["application/json"]["schema"]["required"] == \
        ["status", "version"]
    assert "409" in move["responses"]


def test_page_is_served(shared_server) -> None:
    page = httpx.get(shared_server.url + "/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert httpx.get(shared_server.url + "/static/app.js").status_code == 200


def test_the_page_watch_socket_gets_every_record(server) -> None:
    async def scenario():
        async with websockets.connect(f"{server.ws_url}/ws/watch/{PROJECT}") as sock:
            assert json.loads(await sock.recv())["type"] == "welcome"
            r = await asyncio.get_running_loop().run_in_executor(None, lambda: httpx.post(
                server.url + "/api/tasks", json={"title": "watched"}))
            task_id = r.json()["task"]["id"]
            while True:
                frame = json.loads(await asyncio.wait_for(sock.recv(), 60))
                if frame["record"]["id"] == task_id:
                    assert frame["record"]["kind"] == "task"
                    return

    run(scenario())
