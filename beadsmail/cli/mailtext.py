"""Text renderings of mail results (``--json`` prints the values themselves)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from beadsmail import mail

RULE = "─" * 66


def when(stamp: str | None) -> str:
    return stamp[:19].replace("T", " ") + " UTC" if stamp else "-"


def ago(stamp: str | None, now: datetime | None = None) -> str:
    if not stamp:
        return "-"
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now" if seconds < 5 else f"{seconds}s ago"


def _priority(p: int) -> str:
    return f"P{p}" + (" (urgent)" if p == 0 else "")


def sent(d: dict) -> str:
    verb = "Replied" if d["replies_to"] else "Sent"
    return f"{verb} {d['id']} to {', '.join(d['to'])}: {d['subject']}"


def acked(d: dict) -> str:
    return "\n".join(f"Acknowledged {mid}" for mid in d["acknowledged"])


def inbox(ws, me: str, messages: list[dict], waited: float | None = None) -> str:
    if not messages:
        return f"No messages for {me}" + (f" (waited {waited:g}s)." if waited is not None else ".")
    short = mail.short_ids(ws, [m["id"] for m in messages]
                           + [m['replies_to'] for m in messages if m['replies_to']])
    count = f"{len(messages)} message{'s' if len(messages) != 1 else ''}"
    lines = [f"Inbox for {me} ({count}):"]
    for m in messages:
        tags = (" [URGENT]" if m["priority"] == 0 else "") + (" [unread]" if m.get("state") == "unread" else "")
        lines += ["", f"  {short[m['id']]}: {m['subject']}{tags}",
                  f"      From: {m['from']} ({ago(m['created_at'])}){_mark(m)}"]
        if m['replies_to']:
            lines.append(f"      Re: {short.get(m['replies_to'], m['replies_to'])}")
    return "\n".join(lines)


def message(m: dict) -> str:
    fields = [("ID", m["id"]), ("From", m["from"]), ("To", ", ".join(m["to"])),
              ("Subject", m["subject"]), ("Time", f"{when(m['created_at'])} ({ago(m['created_at'])})"),
              ("Priority", _priority(m["priority"]))]
    if "state" in m:
        fields.append(("Status", m["state"]))
    fields.append(("Type", m["type"]))
    if m["thread_id"] != m["id"]:
        fields.append(("Thread", m["thread_id"]))
    if m['replies_to']:
        fields.append(("Re", m['replies_to']))
    if m["action_requested"] != "none":
        fields.append(("Action", m["action_requested"]))
    for key in ("context", "metadata"):
        if m.get(key):
            fields.append((key.capitalize(), json.dumps(m[key], ensure_ascii=False)))
    if m.get("receipts"):
        fields.append(("Receipts", ", ".join(f"{r['recipient']} {r['state']}"
                                             for r in m["receipts"])))
    if m.get("verified"):
        fields.append(("Signed", _signed(m)))
    if m.get("flags"):
        fields.append(("Flags", flag_text(m["flags"])))
    width = max(len(k) for k, _ in fields) + 2
    head = [f"{(k + ':').ljust(width)}{v}" for k, v in fields]
    return "\n".join([RULE, *head, RULE, "", m["body"]])


FLAG_TEXT = {"replica_mismatch": "sits outside the directory of the replica it names",
             "conflicting_copies": "other copies of this id say something else"}


def flag_text(flags: list[str]) -> str:
    """A record's flags in words (``index.copies``), pointing at ``bd doctor``."""
    return "; ".join(FLAG_TEXT.get(f, f) for f in flags) + " (see 'bd doctor')"


def line(m: dict) -> str:
    tag = " [URGENT]" if m["priority"] == 0 else ""
    return f"{m['id']}{tag} from {m['from']}: {m['subject']}{_mark(m)}"


def _mark(m: dict) -> str:
    """The signature status as a visible word (not colour): see ``signing.provenance``."""
    from beadsmail.signing import MARKS

    mark = MARKS.get(m.get("verified", ""), "")
    return f" {mark}" if mark else ""


def _signed(m: dict) -> str:
    """``verified (replica r..., via bd serve)``: the message view's Signed field."""
    out = m["verified"]
    if m.get("signed_by"):
        out += f" (replica {m['signed_by']}" + (f", via bd {m['via']}" if m.get("via") else "") + ")"
    return out


def record(d: dict) -> str:
    if d.get("kind") == "message":
        return message(d)
    d = {k: flag_text(v) if k == "flags" else v for k, v in d.items() if k != "flags" or v}
    width = max(len(k) for k in d) + 2
    return "\n".join(f"{(k + ':').ljust(width)}"
                     f"{json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v}"
                     for k, v in d.items())


def thread(ws, messages: list[dict]) -> str:
    depth: dict[str, int] = {}
    lines = [f"Thread {messages[0]['thread_id']} ({len(messages)} message"
             f"{'s' if len(messages) != 1 else ''}):"]
    for m in messages:
        level = depth.get(m['replies_to'], -1) + 1 if m['replies_to'] else 0
        depth[m["id"]] = level
        pad = "    " * level
        lines += ["", f"{pad}{m['id']}  {m['from']} -> {', '.join(m['to'])}  "
                      f"{when(m['created_at'])} ({ago(m['created_at'])}){_mark(m)}",
                  f"{pad}Subject: {m['subject']}"]
        lines += [f"{pad}  {text}" for text in m["body"].splitlines() or [""]]
    return "\n".join(lines)


def cleaned(d: dict) -> str:
    n = d["count"]
    noun = f"{n} closed ephemeral message{'s' if n != 1 else ''}"
    kept = [f"Kept {len(d['kept'])} closed message{'s' if len(d['kept']) != 1 else ''} that "
            "stored mail still points at:"] if d.get("kept") else []
    kept += [f"  {m['id']}  {m['subject']}  (for {', '.join(m['kept_for'])})"
             for m in d.get("kept", ())]
    if not n:
        return "\n".join(["No closed ephemeral messages to remove.", *kept])
    items = [f"  {m['id']}  {m['subject']}  (from {m['from']}, {when(m['created_at'])})"
             for m in d["messages"]] + kept
    if d["mode"] == "force":
        segs = len(d["compacted_segments"])
        return "\n".join([f"Removed {noun} (purge {', '.join(d['purge_records'])}); compacted "
                          f"{segs} segment{'s' if segs != 1 else ''}, {d['lines_removed']} lines "
                          "removed:", *items])
    hint = [] if d["mode"] == "dry-run" else ["Nothing removed: run with --force to remove them."]
    return "\n".join([f"Would remove {noun}:", *items, *hint])


def whoami(d: dict) -> str:
    where = {"--identity": "the --identity flag", "BEADS_IDENTITY": "BEADS_IDENTITY",
             "config": ".beads config", "user": "the system user name"}[d["source"]]
    role = f"registered, role {d['role']}" if d["registered"] else f"not registered, acts as {d['role']}"
    session = f"; session {d['session']}" if d["session"] else ""
    return f"{d['identity']} (from {where}; {role}{session})"


def hits(found: list[dict]) -> str:
    """Search hits, best first: what matched, where, and the words around the match."""
    if not found:
        return "No matches."
    lines = []
    for h in found:
        title = h["title_snippet"] if "**" in (h["title_snippet"] or "") else None
        if h["kind"] in ("mail", "post"):
            head = (f"{h['kind']} {h['id']}  {h['from']} -> {', '.join(h['to'])}  "
                    f"{title or h['subject']}")
        elif h["kind"] == "task":
            head = f"task {h['id']}  [{h['status']}]  {title or h['title']}"
        else:
            head = f"comment {h['id']} on {h['task']}  by {h['actor']}"
        snippet = " ".join((h["snippet"] or h["title_snippet"] or "").split())
        lines += [f"{head}  ({ago(h['created_at'])})", f"    {snippet}" if snippet else ""]
    return "\n".join(line for line in lines if line)
