"""The roster's numbers for all agents at once equal the per-agent queries."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from helpers import message_fields

from beadsmail.index import registry, roster
from beadsmail.index.mail import reach
from beadsmail.workspace import Workspace

AGENTS = [f"a{i}" for i in range(8)]
TARGETS = [*AGENTS, "ghost", "*", "@g0", "@g1", "@nobody", "#c0", "#c1", "#c2"]


def _store(repo: Path, bd, seed: int) -> Workspace:
    rng = random.Random(seed)
    assert bd(repo, "init").code == 0
    ws = Workspace.open(repo)
    ws.write("boss", [("agent", {"op": "register", "agent": "boss", "name": "boss",
                                 "role": "manager", "group": None, "tier": 2, "model": None,
                                 "status": "active", "last_seen": None})], "the manager")
    ws.write("boss", [("agent", {
        "op": "unregister" if i == 7 else "register", "agent": a, "name": a, "role": "tester",
        "group": f"g{i % 2}" if i % 3 else None, "tier": 2, "model": None, "status": "active",
        "last_seen": None}) for i, a in enumerate(AGENTS)], "roster")
    ws.write("boss", [("membership", {"op": rng.choice(["join", "join", "leave"]),
                                      "channel": f"c{rng.randrange(3)}", "agent": a})
                      for a in AGENTS for _ in range(2)], "channels")
    sent = []
    for _ in range(60):
        sender = rng.choice([*AGENTS, "outsider"])
        to = rng.sample(TARGETS, rng.choice([1, 1, 1, 2, 3]))
        sent.append(ws.write(sender, [("message", message_fields(sender, tuple(to)))],
                             "mail").records[0]["id"])
    ws.write("boss", [("receipt", {"message": rng.choice(sent), "recipient": rng.choice(AGENTS),
                                   "state": rng.choice(["delivered", "read", "acked"])})
                      for _ in range(80)], "receipts")
    ws.write("boss", [("tombstone", {"target": t}) for t in rng.sample(sent, 5)], "deletions")
    ws.refresh()
    return ws


@pytest.mark.parametrize("seed", range(4))
def test_pending_for_all_equals_pending_for_each(repo: Path, bd, seed: int) -> None:
    ws = _store(repo, bd, seed)
    conn = ws.index.conn
    everyone = [*AGENTS, "outsider", "nobody-at-all"]
    expected = {a: registry.pending_counts(conn, a, reach(conn, a)) for a in everyone}
    assert roster.pending(conn, everyone) == expected
    assert any(unread for unread, _ in expected.values())
    ws.close()
