"""``bd mcp``: tool round trips and send-to-wake latency, against a shell ``bd`` call.

Two agents, each an MCP client session (the SDK's own client) over stdio with a
``bd mcp`` process of its own, in two worktrees of one repository:

- send and inbox: median time of one ``call_tool`` round trip, against one
  ``bd mail send`` / ``bd mail inbox --json`` process (goal: MCP faster, as it
  starts no process);
- send -> wake: bob blocks in ``wait_for_mail``; the time from the start of
  alice's ``send`` until bob's call returns, against a ``bd mail send`` process
  waking a waiting ``bd mail inbox --wait`` process (time from the send's start
  until the waiter exits).

Everything is measured in one run, the two ways in turn, so their ratio holds on a
busy machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from bench.harness import GIT_ENV, bd_args, new_repo, table

ROUNDS, WAKES = 20, 10


def worktrees():
    repo = new_repo("beadsmail-bench-mcp-")
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "init"], cwd=repo, env=env,
                   check=True)
    subprocess.run(bd_args("init"), cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
    out = []
    for name in ("alice", "bob"):
        path = repo.parent / f"{repo.name}-{name}"
        subprocess.run(["git", "worktree", "add", "-q", str(path), "-b", name], cwd=repo,
                       env=env, check=True)
        out.append(path)
    return out


def agent(cwd, identity: str):
    from mcp import Client, StdioServerParameters

    env = {**os.environ, **GIT_ENV, "BEADS_IDENTITY": identity}
    return Client(StdioServerParameters(command=sys.executable, args=["-m", "beadsmail", "mcp"],
                                        cwd=str(cwd), env=env))


def shell(cwd, identity: str, *args: str) -> float:
    env = {**os.environ, **GIT_ENV, "BEADS_IDENTITY": identity}
    start = time.perf_counter()
    subprocess.run(bd_args(*args), cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


async def timed(client, tool: str, **args) -> float:
    start = time.perf_counter()
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return (time.perf_counter() - start) * 1000


async def round_trips(alice, wt_alice) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in ("mcp send", "bd mail send", "mcp inbox",
                                                     "bd mail inbox --json")}
    for i in range(ROUNDS + 2):
        sample = {
            "mcp send": await timed(alice, "send", to=["carol"], subject=f"m{i}", body="x"),
            "bd mail send": shell(wt_alice, "alice", "mail", "send", "carol", "-s", f"s{i}",
                                  "-m", "x"),
            "mcp inbox": await timed(alice, "inbox"),
            "bd mail inbox --json": shell(wt_alice, "alice", "mail", "inbox", "--json"),
        }
        if i >= 2:  # warm-up rounds
            for key, value in sample.items():
                times[key].append(value)
    return times


async def mcp_wake(alice, bob) -> float:
    import anyio

    done: list[float] = []

    async def wait() -> None:
        result = await bob.call_tool("wait_for_mail", {"timeout_seconds": 60})
        assert not result.is_error and not result.structured_content["timed_out"]
        done.append(time.perf_counter())

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.sleep(0.5)  # bob is blocked by now
        start = time.perf_counter()
        await alice.call_tool("send", {"to": ["bob"], "subject": "wake", "body": "up"})
    return (done[0] - start) * 1000


def shell_wake(wt_alice, wt_bob, round_: int) -> float:
    env = {**os.environ, **GIT_ENV, "BEADS_IDENTITY": "bob", "BEADS_SESSION": "bench-shell"}
    waiter = subprocess.Popen(bd_args("mail", "inbox", "--wait", "60", "--json"), cwd=wt_bob,
                              env=env, stdout=subprocess.DEVNULL)
    time.sleep(1.0)  # the waiter is blocked by now
    start = time.perf_counter()
    shell(wt_alice, "alice", "mail", "send", "bob", "-s", f"wake {round_}", "-m", "up")
    waiter.wait(timeout=60)
    return (time.perf_counter() - start) * 1000


async def run() -> None:
    wt_alice, wt_bob = worktrees()
    async with agent(wt_alice, "alice") as alice, agent(wt_bob, "bob") as bob:
        times = await round_trips(alice, wt_alice)
        times["mcp send -> wait_for_mail"] = []
        times["bd mail send -> inbox --wait"] = []
        for i in range(WAKES):  # (bob's mail is closed before each: every wait blocks)
            shell(wt_bob, "bob", "mail", "ack", "--all")
            times["mcp send -> wait_for_mail"].append(await mcp_wake(alice, bob))
            shell(wt_bob, "bob", "mail", "ack", "--all")
            times["bd mail send -> inbox --wait"].append(shell_wake(wt_alice, wt_bob, i))
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [[k, med[k], min(times[k]), max(times[k])] for k in times]
    print(table("MCP tool calls against shell bd processes (ms)",
                ["operation", "median", "min", "max"], rows))
    for mcp_name, shell_name in (("mcp send", "bd mail send"),
                                 ("mcp inbox", "bd mail inbox --json"),
                                 ("mcp send -> wait_for_mail", "bd mail send -> inbox --wait")):
        print(f"{mcp_name} / {shell_name}: {med[mcp_name] / med[shell_name]:.2f} "
              "(goal < 1: no process start)")


def main() -> None:
    import anyio

    anyio.run(run)
