"""The demo's MCP agent: the SDK's own client talking to ``bd mcp`` in a worktree of its
own, set up with ``bd setup claude`` as a coding agent would be."""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path

BOLD, RESET = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")


def show(name: str, tool: str, args: dict, result) -> dict:
    print(f"{BOLD}[{name} via MCP] {tool}({json.dumps(args)}){RESET}")
    data = result.structured_content or {}
    text = result.content[0].text if result.is_error else json.dumps(data)
    print(f"  {'error: ' if result.is_error else ''}{text[:300]}")
    print()
    return data


def run(where: Path, manager, git_env: dict, say) -> None:
    """``manager`` is the demo's CLI agent; ``say`` prints a comment line."""
    import anyio
    from mcp import Client, StdioServerParameters

    bd = shlex.join([sys.executable, "-m", "beadsmail"])
    manager_out = manager.__class__("helper", where, "helper worktree")
    manager_out.bd("setup", "claude", "--identity", "helper", "--bd", bd)
    entry = json.loads((where / ".mcp.json").read_text())["mcpServers"]["beadsmail"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"], cwd=str(where),
                                   env={**os.environ, **git_env, **entry["env"]})

    async def session() -> None:
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
            say(f"the MCP agent sees {len(tools)} tools: {', '.join(t.name for t in tools)}")
            call = client.call_tool
            args = {"role": "project", "name": "Helper (MCP)"}
            show("helper", "register", args, await call("register", args))
            show("helper", "inbox", {}, await call("inbox", {}))
            say("helper blocks in wait_for_mail; the manager sends from the shell and wakes it")
            started = time.perf_counter()
            threading.Timer(1.0, lambda: manager.bd(
                "mail", "send", "helper", "-s", "Docs for the parser",
                "-m", "Could you write the parser's docs?")).start()
            woken = show("helper", "wait_for_mail", {"timeout_seconds": 60},
                         await call("wait_for_mail", {"timeout_seconds": 60}))
            say(f"woken {time.perf_counter() - started:.1f} s after it started waiting "
                "(the send came 1 s in)")
            mid = woken["messages"][0]["id"]
            show("helper", "read", {"message_id": mid}, await call("read", {"message_id": mid}))
            args = {"message_id": mid, "body": "Yes, after lunch."}
            show("helper", "reply", args, await call("reply", args))
            show("helper", "ack", {"message_ids": [mid]}, await call("ack", {"message_ids": [mid]}))

    anyio.run(session)
    manager.bd("mail", "inbox")
