"""The roster's numbers for every agent at once: pending mail and review queues.

``registry.pending_counts`` answers for one agent; a listing of 200 agents asked it
200 times, each walking every broadcast and group message again (~0.3 s with
2,000 messages). Here the same numbers come from a few aggregate queries whose
cost grows with the messages and receipts stored, not with messages x agents:

- A message with one recipient reaches an agent directly (its id) or through a
  shared address (``*``, ``@group``, ``#channel``) unless the agent sent it. So an
  agent's total is the count of direct ones plus, per address it is reached by,
  the count sent there minus those it sent itself: sums over ``GROUP BY`` rows.
- Messages with several recipients could be counted twice that way; they are
  few, and are decided one by one with the same rule.
- Read and acked ones are counted from the agent's own receipts, each kept only
  if its message is still addressed to the agent by that rule (it may have left
  the channel since).

Unread = total - read or acked; open = total - acked: the same as
``registry.pending_counts`` (a test compares them on random stores).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict

# Shared addresses of each agent: everyone gets ``*``, a registered agent its ``@group``,
# a member its ``#channel`` (``mail.reach`` for one agent).
REACH = ("reach(agent, target) AS (SELECT id, '*' FROM agents UNION ALL "
         "SELECT id, '@' || grp FROM agents WHERE registered = 1 AND grp IS NOT NULL UNION ALL "
         "SELECT agent, '#' || channel FROM memberships WHERE joined = 1)")
MULTI = "multi(id) AS (SELECT message_id FROM message_to GROUP BY message_id HAVING count(*) > 1)"
SHARED = "substr(t.target, 1, 1) IN ('*', '@', '#')"


def _reach(conn: sqlite3.Connection) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for agent, target in conn.execute(f"WITH {REACH} SELECT agent, target FROM reach"):
        out[agent].add(target)
    return out


def _single(conn: sqlite3.Connection) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Messages with one recipient: (count per direct target, per shared target per sender)."""
    direct = dict(conn.execute(
        f"WITH {MULTI} SELECT t.target, count(*) FROM message_to t WHERE NOT {SHARED} AND "
        "t.message_id NOT IN multi GROUP BY t.target"))
    shared: dict[str, dict[str, int]] = defaultdict(dict)
    for target, sender, n in conn.execute(
            f"WITH {MULTI} SELECT t.target, s.sender, count(*) FROM message_to t JOIN messages s "
            f"ON s.id = t.message_id WHERE {SHARED} AND t.message_id NOT IN multi "
            "GROUP BY t.target, s.sender"):
        shared[target][sender] = n
    return direct, shared


def _multi(conn: sqlite3.Connection) -> list[tuple[str | None, set[str]]]:
    """Messages with several recipients: (sender, targets); sender None without a row."""
    found: dict[str, tuple[str | None, set[str]]] = {}
    for mid, target, sender in conn.execute(
            f"WITH {MULTI} SELECT t.message_id, t.target, s.sender FROM message_to t "
            "LEFT JOIN messages s ON s.id = t.message_id WHERE t.message_id IN multi"):
        found.setdefault(mid, (sender, set()))[1].add(target)
    return list(found.values())


def _done(conn: sqlite3.Connection) -> dict[str, tuple[int, int]]:
    """Per recipient: (read or acked, acked) among the messages addressed to it."""
    rows = conn.execute(
        f"WITH {REACH} SELECT r.recipient, sum(r.state >= 2), sum(r.state >= 3) FROM receipts r "
        "LEFT JOIN messages s ON s.id = r.message_id WHERE r.state >= 2 AND EXISTS ("
        "SELECT 1 FROM message_to t WHERE t.message_id = r.message_id AND (t.target = r.recipient "
        "OR (s.sender <> r.recipient AND t.target IN "
        "(SELECT target FROM reach WHERE agent = r.recipient)))) GROUP BY r.recipient")
    return {agent: (read, acked) for agent, read, acked in rows}


def pending(conn: sqlite3.Connection, agents: list[str]) -> dict[str, tuple[int, int]]:
    """``agent -> (unread, open)`` for each of ``agents``, as ``registry.pending_counts``."""
    reach = _reach(conn)
    direct, shared = _single(conn)
    done = _done(conn)
    sent_to = {target: sum(by.values()) for target, by in shared.items()}
    wanted = set(agents)
    reached_by: dict[str, set[str]] = defaultdict(set)  # shared address -> agents it reaches
    for agent in wanted:
        for target in reach.get(agent, ("*",)):
            reached_by[target].add(agent)
    several: dict[str, int] = defaultdict(int)
    for sender, targets in _multi(conn):
        hit = targets & wanted
        if sender is not None:
            for target in targets:
                hit |= reached_by.get(target, set()) - {sender}
        for agent in hit:
            several[agent] += 1
    out = {}
    for agent in agents:
        total = direct.get(agent, 0) + several[agent] + sum(
            sent_to.get(t, 0) - shared.get(t, {}).get(agent, 0) for t in reach.get(agent, ("*",)))
        read, acked = done.get(agent, (0, 0))
        out[agent] = (total - read, total - acked)
    return out


def review_queues(conn: sqlite3.Connection) -> dict[str | None, int]:
    """Tasks waiting in ``review`` per group (None: tasks without a group)."""
    try:
        return dict(conn.execute("SELECT grp, count(*) FROM tasks WHERE status = 'review' AND "
                                 "deleted = 0 GROUP BY grp"))
    except sqlite3.OperationalError:  # no task table yet
        return {}
