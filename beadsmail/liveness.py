"""Signs of life: any command an agent runs says it is alive, not only a heartbeat.

Two kinds, so that liveness costs next to nothing on the hot paths:

- What an agent writes: every record carries its ``actor`` and ``created_at``,
  and the index keeps each actor's newest (``actor_seen``, by a trigger on
  ``records``), so a send, a receipt, a post or a task move counts where it is
  folded, on every clone it reaches, without any further commit.
- What only reads: the CLI calls ``touch`` as soon as it knows who a command
  runs as (a small write to the index's local ``heartbeats`` table, so the
  command's own output already shows its caller alive), and ``note_alive``
  after the command succeeded, which commits a heartbeat only for a registered
  agent whose newest committed sign of life (a heartbeat or any record it wrote)
  is older than ``agents.heartbeat_interval``: at most one commit per agent per
  interval, as ``bd agent heartbeat`` does, and none after a command that wrote.

This module imports nothing beyond what opening a workspace already did; the
commit itself goes through ``agents``, imported only when one is due.
"""

from __future__ import annotations

from datetime import datetime

from beadsmail import records
from beadsmail.index import registry
from beadsmail.timespec import age_seconds


def touch(ws, actor: str) -> None:
    """Note here, at once and without a commit, that ``actor`` is alive. Where nothing is
    set up yet (no index), a sign of life sets nothing up."""
    if ws.loc.state_dir.is_dir():
        registry.touch(ws.index.conn, actor, records.now_iso(), None)


def note_alive(ws, actor: str) -> bool:
    """After a command ``actor`` ran: commit a heartbeat if it is a registered agent and
    its last committed sign of life is older than the interval. True when committed."""
    if not ws.loc.state_dir.is_dir():
        return False
    row = registry.agent(ws.index.conn, actor)
    if row is None or not row["registered"]:
        return False
    if since_committed(ws, actor, records.now_iso()) < interval(ws):
        return False
    from beadsmail import agents

    return agents.beat(ws, actor)["committed"]


def interval(ws) -> float:
    """Seconds between committed heartbeats (``agents.heartbeat_interval``)."""
    return float(ws.config["agents"]["heartbeat_interval"])


def since_committed(ws, actor: str, now_text: str) -> float:
    """Seconds since ``actor``'s liveness was last committed (as folded here, or as this
    clone last committed it); infinite if never."""
    conn = ws.index.conn
    local = registry.local_heartbeat(conn, actor)
    last = max(filter(None, (local[1] if local else None, registry.committed_seen(conn, actor))),
               default=None)
    age = age_seconds(last, datetime.fromisoformat(now_text.replace("Z", "+00:00")))
    return float("inf") if age is None else age
