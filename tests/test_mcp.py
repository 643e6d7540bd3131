"""The MCP server through the SDK's own client: over stdio (``bd mcp`` spawned in a
worktree, as a coding agent starts it) and over streamable HTTP (``bd serve``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import GIT_ENV

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from beadsmail import tokens  # noqa: E402
from beadsmail.server.runner import Background  # noqa: E402
from beadsmail.workspace import Workspace  # noqa: E402

DEADLINE = 120  # seconds: a generous bound on a shared, slow machine, never a window


@pytest.fixture
def two(worktrees: list[Path], bd) -> list[Path]:
    assert bd(worktrees[0], "init").code == 0
    return worktrees[1:]


def stdio_agent(cwd: Path, identity: str | None = None):
    env = {k: v for k, v in os.environ.items() if k not in ("BEADS_IDENTITY", "BEADS_SESSION")}
    env.update(GIT_ENV)
    if identity:
        env["BEADS_IDENTITY"] = identity
    return Client(StdioServerParameters(command=sys.executable, args=["-m", "beadsmail", "mcp"],
                                        cwd=str(cwd), env=env))


def http_agent(url: str, **headers: str):
    return Client(streamable_http_client(url + "/mcp",
                                         http_client=httpx.AsyncClient(headers=headers)))


async def call(client: Client, tool: str, **args) -> dict:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def refused(client: Client, tool: str, **args) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return result.content[0].text


async def conversation(alice: Client, bob: Client) -> None:
    """Mail both ways, a blocked waiter woken, a threaded reply, a stale task move refused."""
    tools = {t.name for t in (await alice.list_tools()).tools}
    assert {"send", "inbox", "read", "ack", "reply", "wait_for_mail", "thread", "task_move",
            "register", "whoami", "channel_post", "channel_read"} <= tools
    assert len(tools) <= 16
    # nothing for bob yet: the wait blocks until its timeout
    assert (await call(bob, "wait_for_mail", timeout_seconds=0.2))["timed_out"] is True
    woken: dict = {}

    async def waiter() -> None:
        with anyio.fail_after(DEADLINE):
            woken.update(await call(bob, "wait_for_mail", timeout_seconds=DEADLINE))

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        sent = await call(alice, "send", to=["bob"], subject="Take the parser",
                          body="Please take bd task for the parser.", action="respond")
    assert woken["timed_out"] is False
    assert [m["id"] for m in woken["messages"]] == [sent["id"]]
    assert woken["messages"][0]["preview"].startswith("Please take")
    listed = await call(bob, "inbox")
    assert [m["id"] for m in listed["messages"]] == [sent["id"]]
    assert (await call(bob, "inbox"))["count"] == 1  # listing changes nothing
    full = await call(bob, "read", message_id=sent["id"][:9])
    assert full["body"] == "Please take bd task for the parser." and full["state"] == "read"
    answer = await call(bob, "reply", message_id=sent["id"], body="On it.")
    assert answer["replies_to"] == sent["id"] and answer["thread_id"] == sent["id"]
    assert answer["to"] == ["alice"] and answer["subject"] == "Re: Take the parser"
    thread = await call(alice, "thread", message_id=answer["id"])
    assert [m["id"] for m in thread["messages"]] == [sent["id"], answer["id"]]
    # more mail while the first is still open: the wait returns only what is new
    second = await call(alice, "send", to=["bob"], subject="Also", body="The lexer too.")
    again = await call(bob, "wait_for_mail", timeout_seconds=DEADLINE)
    assert [m["id"] for m in again["messages"]] == [second["id"]]
    closed = await call(bob, "ack", message_ids=[sent["id"], second["id"]])
    assert closed["acknowledged"] == [sent["id"], second["id"]]
    assert (await call(bob, "inbox"))["count"] == 0
    # a task moved by alice; bob's move with the version he read first is refused
    task = (await call(alice, "task_create", title="Write the parser", assign="bob"))["task"]
    assert task["version"] == 1
    seen = (await call(bob, "task_list", mine=True))["tasks"]
    assert [(t["id"], t["version"]) for t in seen] == [(task["id"], 1)]
    moved = await call(alice, "task_move", task_id=task["id"], status="todo", version=1)
    assert moved["task"]["version"] == 2
    why = await refused(bob, "task_move", task_id=task["id"], status="in_progress", version=1)
    assert f"task {task['id']} is at version 2, not 1" in why
    assert (await call(bob, "task_move", task_id=task["id"], status="in_progress",
                       version=2))["task"]["status"] == "in_progress"
    note = await call(bob, "task_comment", task_id=task["id"], text="Started.")
    assert note["comment"]["actor"] == "bob"
    resource = await bob.read_resource("beadsmail://thread/" + sent["id"])
    assert [m["id"] for m in json.loads(resource.contents[0].text)["messages"]] == \
        [sent["id"], answer["id"]]


def test_two_agents_in_two_worktrees_over_stdio(two: list[Path]) -> None:
    async def main() -> None:
        async with stdio_agent(two[0], "alice") as alice, stdio_agent(two[1], "bob") as bob:
            await conversation(alice, bob)

    anyio.run(main)


def test_identity_comes_from_register_then_is_fixed(two: list[Path], bd) -> None:
    async def main() -> None:
        async with stdio_agent(two[0]) as agent:
            assert (await call(agent, "whoami"))["identity"] is None
            assert "call the register tool" in await refused(agent, "send", to=["bob"],
                                                             subject="s", body="b")
            registered = await call(agent, "register", agent_id="carol", role="architect")
            assert registered["identity"] == "carol"
            assert registered["agent"]["role"] == "architect"
            assert (await call(agent, "whoami"))["identity"] == "carol"
            why = await refused(agent, "register", agent_id="dave")
            assert "acts as carol" in why and "fixed" in why
            sent = await call(agent, "send", to=["bob"], subject="hi", body="hello")
            assert sent["from"] == "carol"

    anyio.run(main)
    roster = bd(two[0], "agent", "list", "--json").json()
    assert [a["id"] for a in roster] == ["carol"]


def test_errors_are_tool_errors_with_the_cli_message(two: list[Path], bd) -> None:
    said: list[str] = []

    async def main() -> None:
        async with stdio_agent(two[0], "alice") as agent:
            why = await refused(agent, "read", message_id="bd-nosuchthing")
            said.append(why)
            why = await refused(agent, "send", to=["bad name"], subject="s", body="b")
            assert "invalid recipient 'bad name'" in why
            why = await refused(agent, "task_move", task_id="bd-x", status="todo", version=1)
            assert "bd-x" in why

    anyio.run(main)
    cli = bd(two[0], "mail", "read", "bd-nosuchthing", env={"BEADS_IDENTITY": "alice"})
    assert cli.code == 1 and cli.err.strip() == "error: " + said[0]


def test_two_agents_over_streamable_http(two: list[Path]) -> None:
    ws = Workspace.open(two[0])
    with Background(ws, identity="human") as server:
        async def main() -> None:
            async with http_agent(server.url, **{"X-Beads-Identity": "alice"}) as alice, \
                    http_agent(server.url, **{"X-Beads-Identity": "bob"}) as bob:
                await conversation(alice, bob)

        anyio.run(main)
        nobody = httpx.post(server.url + "/mcp", json={"jsonrpc": "2.0", "id": 1,
                                                       "method": "tools/list"})
        assert nobody.status_code == 401 and "X-Beads-Identity" in nobody.text


def test_http_mcp_needs_a_valid_token_off_loopback_rules(two: list[Path]) -> None:
    ws = Workspace.open(two[0])
    secret = tokens.create(ws.loc.state_dir, "alice")["token"]
    with Background(ws, identity="human", require_tokens=True) as server:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        for headers in ({}, {"Authorization": "Bearer bdt_wrong"},
                        {"Authorization": f"Bearer {secret}", "X-Beads-Identity": "bob"}):
            reply = httpx.post(server.url + "/mcp", json=body, headers=headers)
            assert reply.status_code == 401, (headers, reply.text)
            assert reply.json()["error"]["type"] == "permission_denied"
        foreign = httpx.post(server.url + "/mcp", json=body,
                             headers={"Authorization": f"Bearer {secret}",
                                      "Origin": "http://evil.example"})
        assert foreign.status_code == 403

        async def main() -> None:
            async with http_agent(server.url, Authorization=f"Bearer {secret}") as agent:
                assert (await call(agent, "whoami"))["identity"] == "alice"
                why = await refused(agent, "register", agent_id="mallory")
                assert "acts as alice" in why

        anyio.run(main)
