"""Spec 13, the agent communication bus (seeds 002), against ``bd serve``.

The document's server reads frames ``{"type", "content", "agent_type",
"metadata"}`` from ``/ws/agent/messages/{project_id}?agent_id=...`` and
broadcasts a message object to the project's other agents; its frontend
(``AgentMessageLog``) opens the same path without ``agent_id`` and appends each
message it receives. These tests are those clients, in Python: the frontend is a
React component (it needs a browser build to run, and the Node here has no
WebSocket), so its effect — open the URL, parse each frame as a message — is
written out. The document's ``ws://localhost:8001`` becomes the test server's
address, since a fixed port may be taken on the machine running the tests.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets

from beadsmail.server.runner import Background
from beadsmail.workspace import Workspace

PROJECT = "3f2a6c1e-8d4b-4c3a-9e1f-2b7d5a9c0e41"  # a UUID, as the document's project_id
COLUMNS = {"id", "project_id", "sender_agent_id", "sender_agent_type", "sender_session_id",
           "message_type", "content", "metadata", "delivered_at", "read_at", "created_at"}


@pytest.fixture
def server(worktrees: list[Path], bd):
    assert bd(worktrees[0], "init").code == 0
    ws = Workspace.open(worktrees[0])
    with Background(ws, identity="human", projects=[PROJECT]) as bg:
        yield bg
    ws.close()


async def _next(sock, timeout: float = 30) -> dict:
    return json.loads(await asyncio.wait_for(sock.recv(), timeout))


async def _message(sock) -> dict:
    """The next frame that is a message (beadsmail also sends welcome/ready/sent frames)."""
    while True:
        frame = await _next(sock)
        if "message_type" in frame:
            return frame


def test_agents_exchange_spec13_frames_and_the_frontend_logs_them(server, bd,
                                                                  worktrees) -> None:
    base = server.ws_url

    async def scenario():
        url = f"{base}/ws/agent/messages/{PROJECT}"
        a = await websockets.connect(f"{url}?agent_id=agent-a")
        b = await websockets.connect(f"{url}?agent_id=agent-b")
        for sock in (a, b):
            assert (await _next(sock))["type"] == "welcome"
        frontend = await websockets.connect(url)  # AgentMessageLog: no agent_id
        # the frame the document's handler reads
        await a.send(json.dumps({"type": "discovery", "content": "Found bug in API endpoint",
                                 "agent_type": "backend", "metadata": {"file": "api.py"}}))
        got = await _message(b)
        assert COLUMNS <= set(got)
        assert (got["project_id"], got["sender_agent_id"], got["sender_agent_type"],
                got["message_type"], got["content"]) == (
            PROJECT, "agent-a", "backend", "discovery", "Found bug in API endpoint")
        assert got["metadata"]["file"] == "api.py" and got["created_at"].endswith("Z")
        assert got["delivered_at"] is not None and got["read_at"] is None
        logged = await _next(frontend)
        assert set(logged) == COLUMNS and logged["id"] == got["id"]
        # "type" defaults to status; the sender never receives its own message
        await b.send(json.dumps({"content": "Agent B now running session 7"}))
        status = await _message(a)
        assert (status["message_type"], status["sender_agent_id"]) == ("status", "agent-b")
        assert (await _next(frontend))["content"] == "Agent B now running session 7"
        # the stream is ordered: had b been sent its own message, it would come before this
        await a.send(json.dumps({"type": "coordination", "content": "About to modify "
                                 "config.yaml, any objections?", "agent_type": "backend"}))
        frames = []
        while not frames or frames[-1].get("message_type") != "coordination":
            frames.append(await _next(b))
        assert [f["id"] for f in frames if "message_type" in f] == [frames[-1]["id"]]
        assert (await _next(frontend))["message_type"] == "coordination"
        for sock in (a, b, frontend):
            await sock.close()
        return got["id"]

    mid = asyncio.run(scenario())
    # persisted: the message is an ordinary record bd reads, delivered to agent-b
    shown = bd(worktrees[1], "show", mid, "--json").json()
    assert shown["body"] == "Found bug in API endpoint" and shown["to"] == [f"#{PROJECT}"]
    assert {r["recipient"]: r["state"] for r in shown["receipts"]}["agent-b"] == "delivered"


def test_a_new_frontend_gets_the_history_and_offline_agents_get_the_queue(server) -> None:
    base = server.ws_url

    async def scenario():
        url = f"{base}/ws/agent/messages/{PROJECT}"
        a = await websockets.connect(f"{url}?agent_id=agent-a")
        assert (await _next(a))["type"] == "welcome"
        b = await websockets.connect(f"{url}?agent_id=agent-b")  # b joins the project ...
        assert (await _next(b))["type"] == "welcome"
        await b.close()  # ... and goes away
        for text in ("Need frontend specialist for component Z",
                     "About to modify config.yaml, any objections?"):
            kind = "request" if text.startswith("Need") else "coordination"
            await a.send(json.dumps({"type": kind, "content": text, "agent_type": "planner"}))
            while (await _next(a))["type"] != "sent":  # (after welcome: ready)
                pass
        frontend = await websockets.connect(url)
        history = [await _next(frontend), await _next(frontend)]
        assert [m["message_type"] for m in history] == ["request", "coordination"]
        b = await websockets.connect(f"{url}?agent_id=agent-b")  # reconnection: the queue
        queued = [await _message(b), await _message(b)]
        assert [m["content"] for m in queued] == [m["content"] for m in history]
        for sock in (a, b, frontend):
            await sock.close()

    asyncio.run(scenario())
