"""btmsg's command line on beadsmail: agents, direct messages, channels, heartbeats.

Both shapes btmsg users type are taken: the reference's options
(``send --to A --content TEXT``, ``register --id ... --name ... --role ...``,
``channel-post --channel C --content TEXT``, ``ack --message-id ID``) and the
published script's positionals (``send A TEXT...``, ``register ID NAME ROLE
GROUP``, ``read ID``, ``reply ID TEXT...``, ``channel send C TEXT...``).
Every command becomes one call of the domain API as the agent ``me`` (from
``BTMSG_AGENT_ID``), so what btmsg writes is ordinary mail, channels and agents
that ``bd`` reads, and the reverse.

btmsg's rules hold on top of beadsmail's: an agent must be registered before it
sends or receives; an agent reads only what is addressed to it; the role matrix
is beadsmail's, which is btmsg's. Output is btmsg's: its table columns under
``--json`` (``from_agent``, ``to_agent``, ``content``, ``read``, ``reply_to``,
``sender_group_id``, ...), short lines otherwise. A message's ``sender_group_id``
is its record's ``sender_group``: the sender's group when it was sent.

Views are scoped to the caller's group as btmsg's are (see ``groups``): ``read``
and ``inbox`` leave out what other groups' agents sent to ``*`` or a channel,
``channels`` lists the group's channels and the shared ones, ``channel history``
shows the group's posts, ``status`` the group's agents, ``feed`` (managers
only, as btmsg's admin feed) every message the group's agents sent.
"""

from __future__ import annotations

from beadsmail import agents, channels, contacts, mail, permissions
from beadsmail.errors import InvalidInput, NotFound
from beadsmail.index import mail as mail_index
from beadsmail.index import registry

ROLE_ALIASES = {"admin": "manager"}  # the published script's tier-0 role
SUBJECT_CHARS = 80


# -- translations ---------------------------------------------------------------

def message_row(ws, view: dict, me: str | None = None) -> dict:
    """A message as a row of btmsg's ``messages`` table (plus its subject and type)."""
    state = view.get("state")
    if state is None and me is not None:
        state = "read" if mail_index.state(ws.index.conn, view["id"], me) >= 2 else "unread"
    return {"id": view["id"], "from_agent": view["from"], "to_agent": ",".join(view["to"]),
            "content": view["body"], "read": 0 if state in (None, "unread") else 1,
            "reply_to": view.get("replies_to"), "sender_group_id": view.get("sender_group"),
            "created_at": view["created_at"], "subject": view["subject"], "type": view["type"]}


def agent_row(view: dict) -> dict:
    """An agent as a row of btmsg's ``agents`` table (plus liveness and unread count)."""
    return {"id": view["id"], "name": view["name"], "role": view["role"],
            "group_id": view["group"], "tier": view["tier"], "model": view["model"],
            "status": view["status"], "last_seen": view["last_seen"],
            "stalled": view["stalled"], "unread": view["unread"]}


def channel_row(summary: dict) -> dict:
    return {"id": summary["name"], "name": "#" + summary["name"], "group_id": summary["group"],
            "created_by": summary["created_by"], "created_at": summary["created_at"],
            "members": summary["members"], "messages": summary["messages"]}


def _group(ws, agent_id: str) -> str | None:
    row = registry.agent(ws.index.conn, agent_id)
    return row["group"] if row and row["registered"] else None


def _subject(content: str) -> str:
    first = next((line.strip() for line in content.splitlines() if line.strip()), "")
    return first[:SUBJECT_CHARS]


def require_registered(ws, me: str) -> dict:
    """btmsg's rule: an agent registers before it sends or receives."""
    ws.refresh()
    row = registry.agent(ws.index.conn, me)
    if row is None or not row["registered"]:
        raise NotFound(f"agent {me!r} is not registered; register it first with 'btmsg register "
                       f"--id {me} --name NAME --role ROLE --group GROUP --tier 2'")
    return row


def _text(opts: dict, rest: list[str], what: str = "--content") -> str:
    text = opts.get(what) or " ".join(rest)
    if not text.strip():
        raise InvalidInput(f"nothing to send: give the text with {what} TEXT")
    return text


# -- commands -------------------------------------------------------------------

def register(ws, me: str | None, opts: dict, rest: list[str]) -> tuple[dict, str]:
    agent_id = opts.get("--id") or (rest[0] if rest else None)
    name = opts.get("--name") or (rest[1] if len(rest) > 1 else None)
    role = opts.get("--role") or (rest[2] if len(rest) > 2 else None)
    group = opts.get("--group") or (rest[3] if len(rest) > 3 else None)
    if not agent_id or not role:
        raise InvalidInput("register needs --id ID --name NAME --role ROLE --group GROUP")
    role = ROLE_ALIASES.get(role, role)
    tier = int(opts["--tier"]) if opts.get("--tier") else (1 if role != "project" else 2)
    ws.refresh()
    row = registry.agent(ws.index.conn, agent_id)
    update = bool(row and row["registered"])
    view = agents.register(ws, me or agent_id, agent_id, role=role, name=name, group=group,
                           tier=tier, model=opts.get("--model"), update=update)
    verb = "Updated" if update else "Registered"
    return agent_row(view), f"✓ {verb}: {view['name']} ({view['role']}, tier {view['tier']})"


def send(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    to = opts.get("--to") or (rest.pop(0) if rest else None)
    if not to:
        raise InvalidInput("send needs a recipient: --to AGENT")
    content = _text(opts, rest)
    require_registered(ws, me)
    view = mail.send(ws, me, [to], _subject(content), content, type_="request",
                     reply_to=opts.get("--reply-to"))
    return message_row(ws, view), f"✓ Sent to {to} [{view['id']}]"


def reply(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    token = opts.get("--message-id") or (rest.pop(0) if rest else None)
    if not token:
        raise InvalidInput("reply needs the message id: btmsg reply MSG-ID TEXT")
    content = _text(opts, rest)
    require_registered(ws, me)
    _mine(ws, me, token)
    view = mail.reply(ws, me, token, content)
    return message_row(ws, view), f"✓ Replied to {','.join(view['to'])} [{view['id']}]"


def _mine(ws, me: str, token: str) -> dict:
    """A message addressed to ``me`` (btmsg: each agent reads its own messages only)."""
    record = mail.resolve_message(ws, token)
    conn = ws.index.conn
    if not mail_index.addressed_to(conn, record["id"], me, mail_index.reach(conn, me)):
        raise NotFound(f"message {token} is not addressed to {me}; an agent reads only its own "
                       "messages (see 'btmsg read')")
    return record


def read(ws, me: str, opts: dict, rest: list[str]) -> tuple[list | dict, str]:
    """``read``: every unread message, now marked read; ``read ID``: that one."""
    row = require_registered(ws, me)
    token = opts.get("--message-id") or (rest[0] if rest else None)
    if token:
        _mine(ws, me, token)
        row = message_row(ws, mail.read(ws, me, token), me)
        return row, _render_full(row)
    found = mail.inbox(ws, me, unread=True, group=row["group"])
    for view in found:
        mail.read(ws, me, view["id"])
    rows = [message_row(ws, {**v, "state": "read"}) for v in reversed(found)]  # oldest first
    return rows, _render_list(rows, f"Unread messages ({len(rows)})", "No unread messages.")


def inbox(ws, me: str, opts: dict, rest: list[str]) -> tuple[list, str]:
    """Unread messages without marking them (``--all``: the last 50 open ones too)."""
    row = require_registered(ws, me)
    found = mail.inbox(ws, me, unread=not opts.get("--all"), limit=50, group=row["group"])
    rows = [message_row(ws, v) for v in reversed(found)]
    label = "All messages" if opts.get("--all") else f"Unread messages ({len(rows)})"
    return rows, _render_list(rows, label, "No messages." if opts.get("--all")
                              else "No unread messages.")


def ack(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    ids = ([opts["--message-id"]] if opts.get("--message-id") else []) + rest
    if not ids:
        raise InvalidInput("ack needs the message: --message-id ID")
    require_registered(ws, me)
    for token in ids:
        _mine(ws, me, token)
    done = mail.ack(ws, me, ids, session=opts.get("session"))
    return done, f"✓ Seen: {', '.join(done['acknowledged'])}"


def channel_post(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    name = opts.get("--channel") or (rest.pop(0) if rest else None)
    if not name:
        raise InvalidInput("channel-post needs --channel NAME")
    content = _text(opts, rest)
    require_registered(ws, me)
    posted = channels.post(ws, me, name, content)
    warnings = posted["warnings"]
    view = mail.view(ws.index.record(posted["id"]))
    return message_row(ws, view), "\n".join([*warnings, f"✓ Sent to #{posted['channel']} "
                                              f"[{posted['id']}]"])


def channel_list(ws, me: str | None, opts: dict, rest: list[str]) -> tuple[list, str]:
    """The caller's group's channels and the shared ones (every channel without a caller)."""
    ws.refresh()
    rows = [channel_row(c) for c in channels.list_channels(ws, _group(ws, me) if me else None)]
    lines = [f"  {r['name']}  ({len(r['members'])} members, {r['messages']} messages)"
             for r in rows]
    return rows, "\n".join(["Channels:", *lines]) if rows else "No channels."


def channel_create(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    if not rest:
        raise InvalidInput("channel create needs a name")
    require_registered(ws, me)
    made = channels.create(ws, me, rest[0])
    return channel_row(made), f"✓ Channel #{made['name']} created"


def channel_add(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    if len(rest) != 2:
        raise InvalidInput("channel add needs a channel and an agent: btmsg channel add C AGENT")
    require_registered(ws, me)
    done = channels.join(ws, me, rest[0], rest[1])
    return done, f"✓ Added {done['agent']} to #{done['channel']}"


def channel_history(ws, me: str, opts: dict, rest: list[str]) -> tuple[list, str]:
    if not rest:
        raise InvalidInput("channel history needs a channel name")
    ws.refresh()
    group = _group(ws, me) if me else None
    found = channels.read(ws, rest[0], _limit(opts, 20), group)
    rows = [message_row(ws, mail.view(ws.index.record(m["id"]))) for m in found["messages"]]
    return rows, _render_list(rows, f"#{found['channel']}", "No messages.")


def feed(ws, me: str, opts: dict, rest: list[str]) -> tuple[list, str]:
    """Every message the caller's group's agents sent, newest ``--limit`` (managers only)."""
    row = require_registered(ws, me)
    permissions.require(ws.index, me, "mail.read.others", ws.config["agents"]["default_role"])
    if not row["group"]:
        raise InvalidInput(f"{me} is in no group: register it with --group GROUP for a feed")
    found = mail_index.feed(ws.index.conn, row["group"], _limit(opts, 50))
    rows = [message_row(ws, mail.view(r)) for r in found]
    return rows, _render_list(rows, f"Activity feed — {row['group']}", "No messages yet.")


def _limit(opts: dict, default: int) -> int:
    raw = opts.get("--limit")
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"--limit takes a positive whole number, not {raw!r}")
    return int(raw)


def heartbeat(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    require_registered(ws, me)
    beat = agents.heartbeat(ws, me)
    return beat, f"✓ Heartbeat: {me} at {beat['last_seen']}"


def status(ws, me: str | None, opts: dict, rest: list[str]) -> tuple[list, str]:
    """The agents of ``--group``, else of the caller's group, else every agent."""
    ws.refresh()
    group = opts.get("--group") or (_group(ws, me) if me else None)
    rows = [agent_row(v) for v in agents.list_agents(ws, group=group)]
    lines = [f"  {r['id']:<16} {r['name']:<20} {r['role']:<10} tier {r['tier']}  "
             f"{'stalled' if r['stalled'] else r['status']}  unread {r['unread']}" for r in rows]
    return rows, "\n".join(["Agents:", *lines]) if rows else "No agents registered."


def whoami(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    ws.refresh()
    row = registry.agent(ws.index.conn, me)
    if row is None or not row["registered"]:
        return {"id": me, "registered": False}, f"Agent ID: {me} (not registered)"
    view = agent_row(agents.show(ws, me))
    return view, (f"{view['name']}\n  ID:    {view['id']}\n  Role:  {view['role']} (Tier "
                  f"{view['tier']})\n  Group: {view['group_id']}\n  Unread: {view['unread']} "
                  "messages")


def unread(ws, me: str | None, opts: dict, rest: list[str]) -> tuple[int, str]:
    if not me:
        return 0, "0"
    ws.refresh()
    count = len(mail.open_mail(ws, me, unread=True, group=_group(ws, me)))
    return count, str(count)


def contact_list(ws, me: str, opts: dict, rest: list[str]) -> tuple[list, str]:
    pairs = contacts.list_contacts(ws, me)["contacts"]
    mine = sorted({p["to"] for p in pairs if p["from"] == me})
    return mine, "\n".join(["Contacts:", *(f"  {c}" for c in mine)]) if mine else "No contacts."


def allow(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    if len(rest) != 2:
        raise InvalidInput("allow needs two agents: btmsg allow FROM TO [--bidirectional]")
    both = bool(opts.get("--bidirectional") or opts.get("-b"))
    done, _ = contacts.allow(ws, me, rest[0], rest[1], both)
    return done, f"✓ Contact: {rest[0]} {'<->' if both else '->'} {rest[1]}"


def history(ws, me: str, opts: dict, rest: list[str]) -> tuple[list, str]:
    """The conversation between ``me`` and another agent, oldest first."""
    if len(rest) != 1:
        raise InvalidInput("history needs an agent id: btmsg history AGENT")
    require_registered(ws, me)
    other = rest[0]
    mine = mail.open_mail(ws, me, sender=other) if other != me else []
    theirs = mail.open_mail(ws, other, sender=me)
    views = sorted({v["id"]: v for v in mine + theirs}.values(), key=lambda v: v["created_at"])
    rows = [message_row(ws, v) for v in views]
    return rows, _render_list(rows, f"Conversation with {other}", "No messages.")


# -- text -----------------------------------------------------------------------

def _render_list(rows: list[dict], label: str, empty: str) -> str:
    if not rows:
        return empty
    lines = [f"{label}:"]
    for r in rows:
        mark = " " if r["read"] else "●"
        reply = f" ↩ {r['reply_to'][:11]}" if r["reply_to"] else ""
        lines.append(f"  {mark} [{r['id']}] {r['created_at'][11:19]} {r['from_agent']}"
                     f" -> {r['to_agent']}{reply}")
        lines.append(f"    {' '.join(r['content'].split())[:120]}")
    return "\n".join(lines)


def _render_full(r: dict) -> str:
    rule = "─" * 60
    lines = [rule, f"  ID:   {r['id']}", f"  From: {r['from_agent']}", f"  To:   {r['to_agent']}",
             f"  Time: {r['created_at']}"]
    if r["reply_to"]:
        lines.append(f"  Re:   {r['reply_to']}")
    return "\n".join([*lines, rule, "", f"  {r['content']}", "", rule])


# -- the command table: name -> (function, flags, options, positionals, needs an agent id) --

MANY = 10**6
COMMANDS: dict[str, tuple] = {
    "register": (register, set(), {"--id", "--name", "--role", "--group", "--tier", "--model",
                                   "--cwd"}, (0, 4), False),
    "send": (send, set(), {"--to", "--content", "--reply-to"}, (0, MANY), True),
    "reply": (reply, set(), {"--message-id", "--content"}, (0, MANY), True),
    "read": (read, set(), {"--message-id"}, (0, 1), True),
    "inbox": (inbox, {"--all"}, set(), (0, 0), True),
    "ack": (ack, set(), {"--message-id"}, (0, MANY), True),
    "channel-post": (channel_post, set(), {"--channel", "--content"}, (0, MANY), True),
    "channels": (channel_list, set(), set(), (0, 0), False),
    "heartbeat": (heartbeat, set(), set(), (0, 0), True),
    "status": (status, set(), {"--group"}, (0, 0), False),
    "whoami": (whoami, set(), set(), (0, 0), True),
    "unread": (unread, set(), set(), (0, 0), False),
    "contacts": (contact_list, set(), set(), (0, 0), True),
    "allow": (allow, {"--bidirectional", "-b"}, set(), (2, 2), True),
    "history": (history, set(), set(), (1, 1), True),
    "channel list": (channel_list, set(), set(), (0, 0), False),
    "channel create": (channel_create, set(), set(), (1, 1), True),
    "channel send": (channel_post, set(), set(), (1, MANY), True),
    "channel add": (channel_add, set(), set(), (2, 2), True),
    "channel history": (channel_history, set(), {"--limit"}, (1, 1), False),
    "feed": (feed, set(), {"--limit"}, (0, 0), True),
}

USAGE = """\
usage: btmsg <command> [options] [--json]     (the agent: BTMSG_AGENT_ID)
  register --id ID --name NAME --role ROLE --group GROUP [--tier N] [--model M]
  register ID NAME ROLE GROUP [--tier N] [--model M]
  send --to AGENT --content TEXT       send AGENT TEXT...
  reply MSG-ID TEXT...
  read                                 read MSG-ID        (marks read)
  inbox [--all]                        (does not mark read)
  ack --message-id ID
  channel-post --channel NAME --content TEXT
  channels                             channel list|create|send|history|add ...
  feed [--limit N]                     (managers: the group's messages)
  heartbeat | status [--group G] | whoami | unread | contacts | allow FROM TO [-b] | history AGENT"""
