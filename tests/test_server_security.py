"""bd serve against hostile clients: token scoping, pre-auth bodies, slow headers, deep JSON.

Each test waits on a condition (a frame, a closed socket, a status line) with a
generous deadline, never on a fixed time window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import websockets
from conftest import GIT_ENV, run_bd

from beadsmail import tokens
from beadsmail.server.runner import Background
from beadsmail.server.security import Limits
from beadsmail.workspace import Workspace

PROJECT = "proj"
DEADLINE = 60.0
BIG = 200 * 1024 * 1024


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, DEADLINE))


def wait_for(condition, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


# -- a store with a roster, private mail and a private channel ----------------------

@pytest.fixture(scope="module")
def cast(tmp_path_factory):
    """boss (manager), w1 and w2 (workers); mail between them; #ops with boss and w2 only."""
    from conftest import make_repo

    repo = make_repo(tmp_path_factory.mktemp("scoping") / "repo")

    def bd(*args: str, who: str = "boss") -> dict | list:
        result = run_bd(repo, *args, "--identity", who, "--json")
        assert result.code == 0, result.err + result.out
        return result.json()

    assert run_bd(repo, "init").code == 0
    bd("agent", "register", "--id", "boss", "--role", "manager")
    for worker in ("w1", "w2"):
        bd("agent", "register", "--id", worker, "--role", "tester")
    bd("channel", "create", "ops")
    bd("channel", "join", "ops", "--agent", "w2")
    ids = {
        "secret": bd("mail", "send", "w2", "--subject", "secret plan",
                     "--body", "only w2 reads this")["id"],
        "ops": bd("channel", "post", "ops", "-m", "ops only")["id"],
        "for_w1": bd("mail", "send", "w1", "--subject", "hello w1", "--body", "hi")["id"],
        "all": bd("mail", "send", "*", "--subject", "to everyone", "--body", "news")["id"],
        "from_w1": bd("mail", "send", "boss", "--subject", "w1 reports", "--body", "ok",
                      who="w1")["id"],
    }
    ws = Workspace.open(repo)
    secrets = {name: tokens.create(ws.loc.state_dir, name)["token"] for name in ("boss", "w1", "w2")}
    with Background(ws, identity="boss", projects=[PROJECT], require_tokens=True) as bg:
        yield bg, ids, secrets, repo
    ws.close()


def _reaches_w1(message: dict) -> bool:
    return "w1" in message["to"] or "*" in message["to"]


def as_(secrets: dict, who: str) -> dict:
    return {"Authorization": f"Bearer {secrets[who]}"}


def test_a_token_reads_only_its_own_inbox(cast) -> None:
    bg, ids, secrets, _ = cast
    mine = httpx.get(bg.url + "/api/inbox", headers=as_(secrets, "w1"))
    assert mine.status_code == 200
    assert {ids["for_w1"], ids["all"]} <= {m["id"] for m in mine.json()}
    assert all(_reaches_w1(m) for m in mine.json())
    other = httpx.get(bg.url + "/api/inbox?agent=w2", headers=as_(secrets, "w1"))
    assert other.status_code == 403 and other.json()["error"]["type"] == "permission_denied"
    assert "secret" not in other.text
    boss = httpx.get(bg.url + "/api/inbox?agent=w2", headers=as_(secrets, "boss"))
    assert boss.status_code == 200 and ids["secret"] in {m["id"] for m in boss.json()}


@pytest.mark.parametrize("method, path, payload", [
    ("get", "/api/messages/{id}", None),
    ("post", "/api/messages/{id}/read", None),
    ("get", "/api/messages/{id}/thread", None),
    ("post", "/api/messages/{id}/reply", {"body": "let me in"}),
    ("post", "/api/messages", {"to": "boss", "body": "x", "reply_to": "{id}"}),
    ("post", "/api/messages", {"to": "boss", "body": "x", "replies_to": "{id}"}),
])
def test_a_token_cannot_reach_a_message_it_may_not_read(cast, method, path, payload) -> None:
    bg, ids, secrets, _ = cast
    for name in ("secret", "ops"):
        mid = ids[name]
        kwargs = {} if payload is None else {"json": {k: v.replace("{id}", mid)
                                                      for k, v in payload.items()}}
        r = getattr(httpx, method)(bg.url + path.replace("{id}", mid),
                                   headers=as_(secrets, "w1"), **kwargs)
        assert r.status_code == 404, r.text
        assert r.json()["error"]["type"] == "not_found"
        assert "secret plan" not in r.text and "ops only" not in r.text
        # by its short prefix too
        r = httpx.get(bg.url + f"/api/messages/{mid[:9]}", headers=as_(secrets, "w1"))
        assert r.status_code == 404, r.text


def test_a_token_reads_what_is_its_own_and_a_manager_reads_everything(cast) -> None:
    bg, ids, secrets, _ = cast
    for mid in (ids["for_w1"], ids["all"], ids["from_w1"]):
        r = httpx.get(bg.url + f"/api/messages/{mid}", headers=as_(secrets, "w1"))
        assert r.status_code == 200 and r.json()["id"] == mid
    w2 = httpx.get(bg.url + f"/api/messages/{ids['ops']}", headers=as_(secrets, "w2"))
    assert w2.status_code == 200 and w2.json()["body"] == "ops only"  # w2 is in #ops
    for mid in (ids["secret"], ids["ops"]):
        boss = httpx.get(bg.url + f"/api/messages/{mid}", headers=as_(secrets, "boss"))
        assert boss.status_code == 200


def test_the_log_and_channels_follow_the_same_rule(cast) -> None:
    bg, ids, secrets, _ = cast
    log = httpx.get(bg.url + "/api/messages", headers=as_(secrets, "w1"))
    assert log.status_code == 200
    assert {ids["for_w1"], ids["all"], ids["from_w1"]} <= {m["id"] for m in log.json()}
    assert all(_reaches_w1(m) or m["from"] == "w1" for m in log.json())
    for query in ("agent=w2", "channel=ops", "agent=boss"):
        seen = {m["id"] for m in httpx.get(bg.url + "/api/messages?" + query,
                                           headers=as_(secrets, "w1")).json()}
        assert not seen & {ids["secret"], ids["ops"]}, query
    everything = {m["id"] for m in httpx.get(bg.url + "/api/messages",
                                             headers=as_(secrets, "boss")).json()}
    assert set(ids.values()) <= everything
    refused = httpx.get(bg.url + "/api/channels/ops", headers=as_(secrets, "w1"))
    assert refused.status_code == 403 and "ops only" not in refused.text
    member = httpx.get(bg.url + "/api/channels/ops", headers=as_(secrets, "w2"))
    assert member.status_code == 200 and member.json()["messages"][0]["body"] == "ops only"


def test_every_route_has_a_reading_rule() -> None:
    from beadsmail.server import access, api

    assert {r.op for r in api.ROUTES} <= set(access.RULES)


def test_loopback_without_a_token_trusts_the_named_identity(cast) -> None:
    """As documented: on loopback, a request without a token acts as X-Beads-Identity."""
    bg, ids, secrets, repo = cast
    ws = Workspace.open(repo)
    with Background(ws, identity="boss", projects=[PROJECT]) as local:
        r = httpx.get(local.url + "/api/inbox?agent=w2", headers={"X-Beads-Identity": "w1"})
        assert r.status_code == 200 and ids["secret"] in {m["id"] for m in r.json()}
        scoped = httpx.get(local.url + "/api/inbox?agent=w2", headers=as_(secrets, "w1"))
        assert scoped.status_code == 403  # a token scopes on loopback too
    ws.close()


def test_the_watch_feed_and_the_read_frame_follow_the_rule(cast) -> None:
    bg, ids, secrets, repo = cast

    def send(who: str, to: str, subject: str) -> str:
        r = httpx.post(bg.url + "/api/messages", headers=as_(secrets, who),
                       json={"to": to, "subject": subject, "body": subject})
        assert r.status_code == 200, r.text
        return r.json()["id"]

    async def scenario():
        url = f"{bg.ws_url}/ws/watch/{PROJECT}?token={secrets['w1']}"
        async with websockets.connect(url) as sock:
            assert json.loads(await sock.recv())["type"] == "welcome"
            loop = asyncio.get_running_loop()
            hidden = await loop.run_in_executor(None, send, "boss", "w2", "watch: hidden")
            shown = await loop.run_in_executor(None, send, "boss", "w1", "watch: shown")
            seen = []
            while True:
                record = json.loads(await sock.recv())["record"]
                seen.append(record["id"])
                if record["id"] == shown:
                    break
            assert hidden not in seen
        agent = f"{bg.ws_url}/ws/agent/messages/{PROJECT}?agent_id=w1&token={secrets['w1']}"
        async with websockets.connect(agent) as sock:
            await sock.send(json.dumps({"type": "read", "id": ids["secret"], "ref": "r"}))
            await sock.send(json.dumps({"type": "status", "content": "x", "to": "boss",
                                        "replies_to": ids["ops"], "ref": "s"}))
            answers = {}
            while len(answers) < 2:
                frame = json.loads(await sock.recv())
                if frame.get("ref") in ("r", "s"):
                    answers[frame["ref"]] = frame
            for frame in answers.values():
                assert frame["type"] == "error" and frame["error"]["type"] == "not_found"
                assert "secret plan" not in json.dumps(frame)

    run(scenario())


# -- the request body: the token first, the limit while reading ----------------------

def _raw_request(url: str, head: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=DEADLINE)
    sock.sendall(head.encode("latin-1"))
    return sock


def _status_line(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def _post_head(extra: str, length: int | None = BIG) -> str:
    size = f"Content-Length: {length}\r\n" if length is not None else \
        "Transfer-Encoding: chunked\r\n"
    return ("POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n{size}{extra}\r\n")


def test_the_token_is_checked_before_the_body_is_read(cast) -> None:
    bg, _, secrets, _ = cast
    # no body byte is sent: a server that read the body first would never answer
    with _raw_request(bg.url, _post_head("")) as sock:
        assert _status_line(sock).startswith("HTTP/1.1 401")
    with _raw_request(bg.url, _post_head("Authorization: Bearer bdt_nope_nope\r\n")) as sock:
        assert _status_line(sock).startswith("HTTP/1.1 403")
    with _raw_request(bg.url, _post_head(f"Authorization: Bearer {secrets['w1']}\r\n")) as sock:
        assert _status_line(sock).startswith("HTTP/1.1 413")


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def served(tmp_path):
    """``bd serve`` in its own process (its peak memory is its own)."""
    from conftest import make_repo

    repo = make_repo(tmp_path / "repo")
    assert run_bd(repo, "init").code == 0
    proc = subprocess.Popen([sys.executable, "-m", "beadsmail", "serve", "--port", "0", "--json",
                             "--project", PROJECT, "--identity", "human"], cwd=repo,
                            env={**os.environ, **GIT_ENV}, stdout=subprocess.PIPE, text=True)
    try:
        url = json.loads(proc.stdout.readline())["url"]
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=DEADLINE)


def _stream_chunks(sock: socket.socket, total: int, sent: list[int]) -> None:
    chunk = b"x" * 65536
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    try:
        while sent[0] < total:
            sock.sendall(framed)
            sent[0] += len(chunk)
    except OSError:
        return


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_200_mb_body_is_refused_early_and_never_buffered(served) -> None:
    proc, url = served
    assert httpx.get(url + "/api/info").status_code == 200
    before = _peak_rss(proc.pid)
    with _raw_request(url, _post_head("")) as sock:    # announced: refused before reading
        assert _status_line(sock).startswith("HTTP/1.1 413")
    sock = _raw_request(url, _post_head("", length=None))   # chunked: refused while reading
    sent = [0]
    writer = threading.Thread(target=_stream_chunks, args=(sock, BIG, sent), daemon=True)
    writer.start()
    try:
        assert _status_line(sock).startswith("HTTP/1.1 413")
        assert sent[0] < BIG
    finally:
        sock.close()
        writer.join(DEADLINE)
    assert httpx.get(url + "/api/info").status_code == 200
    grown = _peak_rss(proc.pid) - before
    assert grown < 48 * 1024 * 1024, f"peak memory grew by {grown // 1024 // 1024} MB"


def test_the_body_limit_holds_for_bodies_under_the_announced_length(cast) -> None:
    bg, _, secrets, _ = cast
    big = json.dumps({"to": "boss", "body": "x" * (2 << 20)})
    r = httpx.post(bg.url + "/api/messages", content=big, headers={
        **as_(secrets, "w1"), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "too_large"


# -- slow and idle request headers ---------------------------------------------------

@pytest.fixture
def quick_server(tmp_path):
    from conftest import make_repo

    repo = make_repo(tmp_path / "repo")
    assert run_bd(repo, "init").code == 0
    ws = Workspace.open(repo)
    with Background(ws, identity="human", projects=[PROJECT],
                    limits=Limits(header_timeout=1.0)) as bg:
        yield bg
    ws.close()


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except ConnectionError:
        return True


def test_half_sent_and_idle_headers_are_closed(quick_server) -> None:
    bg = quick_server

    async def open_socket():
        sock = await websockets.connect(f"{bg.ws_url}/ws/agent/messages/{PROJECT}?agent_id=a1")
        while json.loads(await sock.recv())["type"] != "ready":
            pass
        return sock

    loop = asyncio.new_event_loop()
    bus = loop.run_until_complete(open_socket())   # a WebSocket is past its headers: it stays
    half = [_raw_request(bg.url, "GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for _ in range(200)]
    idle = [_raw_request(bg.url, "") for _ in range(5)]
    dribbler = _raw_request(bg.url, "GET /api/info HTTP/1.1\r\n")
    open_ = set(half + idle + [dribbler])
    end = time.monotonic() + DEADLINE
    try:
        while open_ and time.monotonic() < end:
            readable, _, _ = select.select(list(open_), [], [], 0.2)
            open_ -= {s for s in readable if _closed(s)}
            if dribbler in open_:
                try:
                    dribbler.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    open_.discard(dribbler)
        assert not open_, f"{len(open_)} connections with unfinished headers are still open"
        assert httpx.get(bg.url + "/api/info").status_code == 200
        loop.run_until_complete(bus.send(json.dumps({"type": "ping", "ref": "p"})))
        assert json.loads(loop.run_until_complete(
            asyncio.wait_for(bus.recv(), DEADLINE)))["type"] == "pong"
    finally:
        for sock in half + idle + [dribbler]:
            sock.close()
        loop.run_until_complete(bus.close())
        loop.close()


# -- JSON nested too deep ------------------------------------------------------------

def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _deep_message(depth: int, **fields) -> str:
    """A message with ``metadata`` nested ``depth`` deep, as text (json.dumps would recurse)."""
    head = json.dumps(fields)[:-1]
    return head + ', "metadata": ' + '{"a": ' * depth + "{}" + "}" * depth + "}"


def _no_tracebacks(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


def test_deep_json_over_http_is_400(cast, caplog) -> None:
    bg, _, secrets, _ = cast
    caplog.set_level(logging.INFO)
    auth = {**as_(secrets, "w1"), "Content-Type": "application/json"}
    for body in (_deep_message(950, to="boss", body="x"),
                 "[" * 100_000 + "]" * 100_000,
                 json.dumps({"to": "boss", "body": "x", "context": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
                     []]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})):
        r = httpx.post(bg.url + "/api/messages", content=body, headers=auth)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "invalid_input"
        assert "nested" in r.json()["error"]["message"]
    fine = httpx.post(bg.url + "/api/messages", headers=as_(secrets, "w1"),
                      json={"to": "boss", "body": "x", "metadata": _nested(20)})
    assert fine.status_code == 200, fine.text
    _no_tracebacks(caplog)


def test_deep_json_over_the_websocket_is_an_error_frame(cast, caplog) -> None:
    bg, _, secrets, _ = cast
    caplog.set_level(logging.INFO)

    async def scenario():
        url = f"{bg.ws_url}/ws/agent/messages/{PROJECT}?agent_id=w1&token={secrets['w1']}"
        async with websockets.connect(url) as sock:
            await sock.send(_deep_message(950, type="status", content="x", ref="deep"))
            await sock.send("[" * 100_000 + "]" * 100_000)
            await sock.send(json.dumps({"type": "ping", "ref": "after"}))
            frames = []
            while not frames or frames[-1].get("type") != "pong":
                frames.append(json.loads(await sock.recv()))
            errors = [f for f in frames if f["type"] == "error"]
            assert len(errors) == 2, frames
            assert all("nested" in e["error"]["message"] for e in errors)

    run(scenario())
    _no_tracebacks(caplog)


def test_the_mcp_endpoint_follows_the_rule(cast) -> None:
    pytest.importorskip("mcp")
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    bg, ids, secrets, _ = cast

    async def scenario():
        client = Client(streamable_http_client(
            bg.url + "/mcp", http_client=httpx.AsyncClient(headers=as_(secrets, "w1"))))
        async with client:
            for tool, args in (("read", {"message_id": ids["secret"]}),
                               ("thread", {"message_id": ids["ops"]}),
                               ("reply", {"message_id": ids["secret"], "body": "let me in"}),
                               ("channel_read", {"channel": "ops"})):
                result = await client.call_tool(tool, args)
                assert result.is_error, (tool, result.structured_content)
                assert "secret plan" not in result.content[0].text
            mine = await client.call_tool("read", {"message_id": ids["for_w1"]})
            assert not mine.is_error and mine.structured_content["id"] == ids["for_w1"]

    run(scenario())
