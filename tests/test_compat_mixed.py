"""Four tools on one store see one conversation: a ``btmsg`` sender, an ``mb-recv``
receiver, a ``bd mail inbox`` reader and a Spec 13 WebSocket client on ``bd serve``,
each in its own worktree of one repository."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import websockets
from shell import js, ok, sh

from beadsmail.server.runner import Background
from beadsmail.workspace import Workspace

PROJECT = "epic4"


def test_btmsg_mb_bd_and_spec13_share_one_conversation(worktrees: list[Path], bd) -> None:
    main, wt1, wt2 = worktrees
    assert bd(main, "init").code == 0
    ok(sh(main, "btmsg register --id mgr-1 --name Manager --role manager --group team --tier 1"))
    ok(sh(wt1, "mb-register orch-1 orch-1 'Epic 4 Orchestrator' --initiative=epic4",
          CLAUDE_SESSION_ID="orch-1"))
    assert bd(wt2, "agent", "register", "--id", "worker-1", "--role", "tester", "--group", "team",
              "--identity", "worker-1").code == 0
    assert bd(main, "agent", "register", "--id", "ws-agent", "--role", "project",
              "--identity", "ws-agent").code == 0
    ws = Workspace.open(main)
    with Background(ws, identity="mgr-1", projects=[PROJECT]) as server:
        root, answer = asyncio.run(_conversation(server.ws_url, main))
    ws.close()
    # the mb receiver got the btmsg broadcast, and receiving marked it read for it alone
    got = js(sh(wt1, "mb-recv --json", CLAUDE_SESSION_ID="orch-1"))
    assert [(m["id"], m["sender"], m["payload"]["body"]) for m in got] == [
        (root, "mgr-1", "Ship the API by Friday")]
    # the bd reader sees it too, unread, and answers in the thread
    inbox = bd(wt2, "mail", "inbox", "--json", "--identity", "worker-1").json()
    assert [(m["id"], m["state"], m["sender"]) for m in inbox] == [(root, "unread", "mgr-1")]
    reply = bd(wt2, "mail", "reply", root, "-m", "tests are ready", "--json",
               "--identity", "worker-1").json()
    # the btmsg sender reads both answers, threaded to its message
    read = js(sh(main, "btmsg read --json", BTMSG_AGENT_ID="mgr-1"))
    assert isinstance(read, list), read
    assert {(m["id"], m["reply_to"]) for m in read} == {(answer, root), (reply["id"], root)}
    thread = bd(main, "show", root, "--thread", "--json").json()
    assert isinstance(thread, list), thread
    assert [m["id"] for m in thread] == [root, answer, reply["id"]]
    assert [m["from"] for m in thread] == ["mgr-1", "ws-agent", "worker-1"]


async def _conversation(base: str, main: Path) -> tuple[str, str]:
    """The Spec 13 agent receives the btmsg broadcast and answers it; returns both ids."""
    url = f"{base}/ws/agent/messages/{PROJECT}?agent_id=ws-agent"
    async with websockets.connect(url) as sock:
        while json.loads(await sock.recv())["type"] != "ready":
            pass
        sent = await asyncio.to_thread(
            sh, main, "btmsg send --to '*' --content 'Ship the API by Friday' --json",
            BTMSG_AGENT_ID="mgr-1")
        root = json.loads(ok(sent))["id"]
        while "message_type" not in (frame := json.loads(await asyncio.wait_for(sock.recv(),
                                                                               60))):
            pass
        assert (frame["id"], frame["sender_agent_id"], frame["content"]) == (
            root, "mgr-1", "Ship the API by Friday")
        await sock.send(json.dumps({"type": "response", "content": "API plan posted",
                                    "agent_type": "backend", "to": "mgr-1",
                                    "replies_to": root}))
        while (answer := json.loads(await asyncio.wait_for(sock.recv(), 60)))["type"] != "sent":
            pass
        return root, answer["id"]
