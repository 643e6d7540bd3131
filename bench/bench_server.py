"""``bd serve``: delivery latency and throughput of the bus, with the server in its own process.

- WebSocket -> WebSocket: one agent sends, another receives; the time includes
  the git commit (goal: median <= 20 ms).
- CLI -> WebSocket: a ``bd mail send`` process in the repository, until the
  connected client has the message (goal: median <= 150 ms); shown from the
  process start and from its exit (the server's pick-up lag alone).
- Throughput: 10 clients each sending 200 messages to the project channel;
  messages/s committed and delivered (goal >= 300/s, nothing lost).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time

from bench.harness import GIT_ENV, bd_args, new_repo, table

CLIENTS, PER_CLIENT, ROUNDS, CLI_ROUNDS = 10, 200, 60, 20


def start_server(repo) -> tuple[subprocess.Popen, str, str]:
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.Popen(bd_args("serve", "--port", "0", "--project", "bench", "--json",
                                    "--identity", "bench"), cwd=repo, env=env,
                            stdout=subprocess.PIPE, text=True)
    info = json.loads(proc.stdout.readline())
    return proc, info["url"].replace("http://", "ws://", 1), "bench"


async def connect(base: str, project: str, agent: str):
    import websockets

    sock = await websockets.connect(f"{base}/ws/agent/messages/{project}?agent_id={agent}",
                                    max_size=None)
    while json.loads(await sock.recv())["type"] != "ready":
        pass
    return sock


async def until(sock, kind: str) -> dict:
    while True:
        frame = json.loads(await sock.recv())
        if frame["type"] == kind:
            return frame


async def ws_latency(base: str, project: str) -> list[float]:
    alice, bob = await connect(base, project, "alice"), await connect(base, project, "bob")
    times = []
    for i in range(ROUNDS):
        start = time.perf_counter()
        await alice.send(json.dumps({"type": "status", "content": f"ping {i}", "to": "bob"}))
        await until(bob, "message")
        times.append((time.perf_counter() - start) * 1000)
        await until(alice, "sent")
    await alice.close()
    await bob.close()
    return times[5:]


async def cli_latency(base: str, project: str, repo) -> tuple[list[float], list[float]]:
    bob = await connect(base, project, "carol")
    env = {**os.environ, **GIT_ENV}
    loop = asyncio.get_running_loop()
    from_start, from_exit = [], []
    for i in range(CLI_ROUNDS):
        start = time.perf_counter()
        exited: list[float] = []

        def send(i=i, exited=exited) -> None:
            subprocess.run(bd_args("mail", "send", "carol", "-s", f"cli {i}", "-m", "hi",
                                   "--identity", "dave"), cwd=repo, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            exited.append(time.perf_counter())

        sender = loop.run_in_executor(None, send)
        await until(bob, "message")
        arrived = time.perf_counter()
        await sender
        from_start.append((arrived - start) * 1000)
        from_exit.append((arrived - exited[0]) * 1000)
    await bob.close()
    return from_start, from_exit


async def throughput(base: str, project: str) -> dict:
    socks = [await connect(base, project, f"agent{i}") for i in range(CLIENTS)]
    expected = (CLIENTS - 1) * PER_CLIENT
    received: list[set] = [set() for _ in socks]
    sent_ids: set = set()
    last_sent = last_delivered = 0.0

    async def reader(i: int, sock) -> None:
        nonlocal last_sent, last_delivered
        acks = 0
        while acks < PER_CLIENT or len(received[i]) < expected:
            frame = json.loads(await asyncio.wait_for(sock.recv(), 60))
            if frame["type"] == "sent":
                acks += 1
                sent_ids.add(frame["id"])
                last_sent = time.perf_counter()
            elif frame["type"] == "message":
                received[i].add(frame["message"]["id"])
                last_delivered = time.perf_counter()
            elif frame["type"] == "error":
                raise RuntimeError(frame)

    async def writer(i: int, sock) -> None:
        for k in range(PER_CLIENT):
            await sock.send(json.dumps({"type": "status", "content": f"{i}:{k}"}))

    start = time.perf_counter()
    await asyncio.gather(*(reader(i, s) for i, s in enumerate(socks)),
                         *(writer(i, s) for i, s in enumerate(socks)))
    total = CLIENTS * PER_CLIENT
    lost = sum(expected - len(r) for r in received)
    for s in socks:
        await s.close()
    return {"messages": total, "committed": len(sent_ids),
            "committed_per_s": total / (last_sent - start),
            "delivered_per_s": total / (last_delivered - start),
            "deliveries": sum(len(r) for r in received), "lost": lost}


def main() -> None:
    repo = new_repo("beadsmail-bench-serve-")
    env = {**os.environ, **GIT_ENV}
    subprocess.run(bd_args("init"), cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
    proc, base, project = start_server(repo)
    try:
        ws_times = asyncio.run(ws_latency(base, project))
        cli_start, cli_exit = asyncio.run(cli_latency(base, project, repo))
        result = asyncio.run(throughput(base, project))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    med = statistics.median
    print(table("bd serve: delivery latency (ms, medians)", ["path", "median", "p90", "goal"], [
        ["WebSocket -> WebSocket (incl. commit)", med(ws_times),
         statistics.quantiles(ws_times, n=10)[-1], "<= 20"],
        ["CLI send process start -> pushed", med(cli_start),
         statistics.quantiles(cli_start, n=10)[-1], "<= 150"],
        ["CLI send process exit -> pushed", med(cli_exit),
         statistics.quantiles(cli_exit, n=10)[-1], "(pick-up lag)"]]))
    print(table(f"bd serve: throughput, {CLIENTS} clients x {PER_CLIENT} messages",
                ["messages", "committed", "committed/s", "delivered/s", "deliveries", "lost",
                 "goal"],
                [[result["messages"], result["committed"], result["committed_per_s"],
                  result["delivered_per_s"], result["deliveries"], result["lost"],
                  ">= 300/s, 0 lost"]]))


if __name__ == "__main__":
    main()
