"""The audit log: who did what, derived from the records themselves.

Nothing extra is stored: every record already names its actor, time, replica
and (in the index) the segment file and line it came from, so the log is a view
of the records newest first, each named by an action such as ``message.send``,
``agent.register`` or ``task.status``. Heartbeats are left out unless asked for
by name (``--action agent.heartbeat``): they say who is alive, not who acted.
"""

from __future__ import annotations

import json

from beadsmail import records
from beadsmail.errors import InvalidInput
from beadsmail.index import registry
from beadsmail.timespec import parse_since

FAMILIES = {
    "message": ("message", "receipt", "tombstone"), "purge": ("purge",),
    "agent": ("agent",), "channel": ("channel", "membership"), "contact": ("contact",),
    "task": ("task", "task_event", "comment"), "dlq": ("dead_letter",),
}
LOG_DIR = ".beads/log"  # segment paths in the index are relative to it, in the store tree
RECEIPT_ACTIONS = {"delivered": "message.deliver", "read": "message.read", "acked": "message.ack"}


def describe(r: dict) -> dict:
    """One record as an audit entry: action, target and a few details."""
    kind = r["kind"]
    if kind == "message":
        action, target, detail = "message.send", ",".join(r["to"]), r["subject"]
    elif kind == "receipt":
        action, target, detail = RECEIPT_ACTIONS[r["state"]], r["message"], r["recipient"]
    elif kind == "tombstone":
        action, target, detail = "message.delete", r["target"], r.get("reason")
    elif kind == "purge":
        action, target, detail = "purge", ",".join(r["targets"][:5]), r.get("reason")
    elif kind == "agent":
        action, target, detail = f"agent.{r['op']}", r["agent"], _agent_detail(r)
    elif kind in ("channel", "membership"):
        name = r.get("channel") or r["name"]
        action, target, detail = f"channel.{r['op']}", "#" + name, r.get("agent")
    elif kind == "contact":
        action, target, detail = f"contact.{r['op']}", f"{r['a']}->{r['b']}", None
    elif kind == "task":
        action, target, detail = "task.create", r["id"], r.get("title")
    elif kind == "task_event":
        action, target, detail = f"task.{r['op']}", r["task"], r.get("status") or r.get("assigned_to")
    elif kind == "comment":
        action, target, detail = "task.comment", r["task"], None
    elif kind == "dead_letter":
        action, target, detail = f"dlq.{r['op']}", r["message"], r["recipient"]
    else:
        action, target, detail = kind, None, None
    return {"id": r["id"], "at": r["created_at"], "actor": r["actor"], "action": action,
            "target": target, "detail": detail, "replica": r["replica"]}


def _agent_detail(r: dict) -> str | None:
    if r["op"] in ("register", "update"):
        return " ".join(f"{k}={r[k]}" for k in ("role", "group", "tier", "status") if r.get(k))
    return None


def _matches(action: str, wanted: str | None) -> bool:
    if wanted is None:
        return action != "agent.heartbeat"
    return action == wanted or action.startswith(wanted + ".")


def log(ws, agent: str | None = None, since: str | None = None, action: str | None = None,
        limit: int = 50) -> list[dict]:
    """Audit entries newest first, filtered by actor, start time and action (or family)."""
    if limit < 1:
        raise InvalidInput("--limit must be at least 1")
    if agent is not None:
        records.check_identity(agent, "agent")
    kinds = None
    if action is not None:
        family = action.split(".", 1)[0]
        if family not in FAMILIES:
            raise InvalidInput(f"unknown action {action!r}: use a family ({', '.join(FAMILIES)}) "
                               "or a full action such as message.send or agent.register")
        kinds = FAMILIES[family]
    start = parse_since(since) if since is not None else None
    ws.refresh()
    conn = ws.index.conn
    out = []
    for data, path, line in registry.audit_records(conn, agent, start, kinds):
        entry = describe(json.loads(data))
        if _matches(entry["action"], action):
            entry["where"] = f"{LOG_DIR}/{path}:{line}" if path else None
            out.append(entry)
            if len(out) >= limit:
                break
    return out
