"""``bd prime``: what an agent needs to know when it starts or after its context was
compacted, in well under ~1,500 tokens.

Who it is and its role; its unread mail (subjects only, urgent first) that this
session has not been shown yet, marked as shown so it is never repeated; tasks
assigned to it and tasks waiting in review; who else is active; and the handful
of tools or commands it will use. Nothing is written to the store.
"""

from __future__ import annotations

from beadsmail import agents, mail, permissions, reservations, tasks
from beadsmail.index import registry

LISTED = 8  # messages, tasks and agents named each; the rest are counted
WIDTH = 80

TOOLS = ("inbox, read, ack, reply, send, wait_for_mail (blocks until mail comes), thread, "
         "channel_post, channel_read, task_list, task_create, task_move (with version), "
         "task_comment, status, whoami, register")
COMMANDS = ("bd mail inbox | read ID | ack ID | reply ID -m TEXT | send TO -s SUBJ -m TEXT; "
            "bd mail inbox --wait 60; bd task list --assigned ME | status ID STATUS --version N; "
            "bd status. Add --json for data.")

def prime(ws, me: str, source: str, session: str | None = None) -> dict:
    ws.refresh()
    conn = ws.index.conn
    unread = mail.open_mail(ws, me, unread=True)
    shown: set[str] = set()
    if session and unread:
        marks = mail.sessions(ws)
        shown = marks.seen(session, me, [m["id"] for m in unread])
        marks.mark(session, me, [m["id"] for m in unread if m["id"] not in shown])
    new = [m for m in unread if m["id"] not in shown]
    mine = list(tasks.listing(ws, None, me, limit=LISTED + 1))
    review = list(tasks.listing(ws, ["review"], limit=LISTED + 1))
    others = [a for a in agents.list_agents(ws) if a["id"] != me and a["liveness"] == "alive"]
    held = reservations.listing(ws)
    return {
        "identity": me, "source": source, "session": session,
        "registered": registry.registered_role(conn, me) is not None,
        "role": permissions.role_of(ws.index, me, ws.config["agents"]["default_role"]),
        "unread": len(unread), "urgent": sum(m["priority"] == 0 for m in unread),
        "already_shown": len(shown),
        "mail": [{k: m[k] for k in ("id", "from", "subject", "priority")} for m in new[:LISTED]],
        "tasks": [_task(t) for t in mine[:LISTED]], "more_tasks": len(mine) > LISTED,
        "review": [_task(t) for t in review[:LISTED]], "more_review": len(review) > LISTED,
        "active": [{"id": a["id"], "role": a["role"]} for a in others[:LISTED]],
        "more_active": max(0, len(others) - LISTED),
        "reservations": [{k: r[k] for k in ("id", "holder", "pattern", "mode", "until", "state")}
                         for r in held[:LISTED]],
        "more_reservations": max(0, len(held) - LISTED),
    }


def _task(row: dict) -> dict:
    return {k: row[k] for k in ("id", "title", "status", "priority", "version", "assigned_to")}


def render(d: dict, via_mcp: bool = False) -> str:
    role = f"role {d['role']}" + ("" if d["registered"] else ", not registered")
    lines = [f"beadsmail: you are {d['identity']} ({role}; identity from {d['source']})."]
    lines.append(f"Mail: {d['unread']} unread ({d['urgent']} urgent)"
                 + (f", {d['already_shown']} shown to this session before" if d["already_shown"]
                    else "") + ("." if d["mail"] or not d["unread"] else "; nothing new."))
    lines += [f"  - {'[URGENT] ' if m['priority'] == 0 else ''}{_clip(m['subject'])} "
              f"(from {m['from']}, {m['id']})" for m in d["mail"]]
    if len(d["mail"]) < d["unread"] - d["already_shown"]:
        lines.append(f"  - and {d['unread'] - d['already_shown'] - len(d['mail'])} more")
    lines.append(f"Your tasks: {len(d['tasks'])}{'+' if d['more_tasks'] else ''}"
                 + ("." if d["tasks"] else " (none)."))
    lines += [f"  - {t['id']} [{t['status']} v{t['version']}] {_clip(t['title'])}"
              for t in d["tasks"]]
    if d["review"]:
        lines.append(f"In review: {len(d['review'])}{'+' if d['more_review'] else ''}.")
        lines += [f"  - {t['id']} v{t['version']} {_clip(t['title'])}" for t in d["review"]]
    active = ", ".join(f"{a['id']} ({a['role']})" for a in d["active"]) or "nobody else"
    more = f" and {d['more_active']} more" if d["more_active"] else ""
    lines.append(f"Active: {active}{more}.")
    if d["reservations"]:
        lines.append("Reserved files (bd reservations; the commit guard refuses others' "
                     "exclusive ones): " + "; ".join(
                         f"{r['pattern']} by {r['holder']}{' (shared)' if r['mode'] == 'shared' else ''}"
                         for r in d["reservations"])
                     + (f"; and {d['more_reservations']} more" if d["more_reservations"] else "")
                     + ".")
    lines.append(("Tools (MCP server 'beadsmail'): " + TOOLS) if via_mcp
                 else ("Commands: " + COMMANDS))
    return "\n".join(lines)


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= WIDTH else text[:WIDTH - 3] + "..."
