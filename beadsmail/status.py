"""``bd status``: the coordination overview in one call.

Agents with liveness and pending mail, channels, the dead-letter queue, the
depth of the review queue and the open file reservations, all read from the
index (nothing is written).
"""

from __future__ import annotations

from beadsmail import addressing, agents, channels, reservations
from beadsmail.index import registry


def overview(ws, me: str) -> dict:
    roster = agents.list_agents(ws)
    conn = ws.index.conn
    dead = addressing.dead_letters(ws)
    return {
        "identity": me,
        **dict(zip(("unread", "open"), registry.pending_counts(conn, me, agents.reach(conn, me)),
                   strict=True)),
        "agents": [{k: a[k] for k in ("id", "name", "role", "group", "tier", "status",
                                      "liveness", "stalled", "last_seen", "seen_seconds_ago",
                                      "unread", "open", "review_queue_count", "attention_score")}
                   for a in roster],
        "stalled": [a["id"] for a in roster if a["stalled"]],
        "channels": [{"name": c["name"], "members": len(c["members"]), "messages": c["messages"],
                      "last_post_at": c["last_post_at"]} for c in channels.list_channels(ws)],
        "dead_letters": len(dead),
        "dead_letter_recipients": sorted({d["recipient"] for d in dead}),
        "review_queue": registry.review_queue_depth(conn),
        "reservations": reservations.listing(ws),
    }
