"""Recipients: who a message may go to, and what to warn about before sending.

A recipient is an agent id, ``#channel``, ``@group`` or ``*`` (every registered
agent). ``check_send`` runs under the store lock before a message is written.

It refuses only what the contacts ACL forbids (config ``acl.contacts``): a
sender that is not a tier 1 agent may message an agent only if a contact
record allows it (``bd contacts allow``) or the recipient is tier 1; an
``@group`` only if it may message every agent of the group; and ``*`` not at
all. Channels are open to all. While nobody is registered the ACL is idle, as
the role matrix is (see ``permissions``).

Everything else is a warning and the message is stored: an unknown, retired or
stopped recipient makes a dead letter, delivered when the agent (re)appears and
listed by ``bd dlq list`` until then; an ``@group`` nobody is in and a
``#channel`` that does not exist likewise. Near misses get a "did you mean".
``check_send`` returns those warnings and the dead letters themselves
(recipient, reason, near misses), which every sending command puts in its
result. Strict addressing (``--strict``, config ``mail.strict``) refuses a send
that would leave a dead letter instead, before anything is written.
"""

from __future__ import annotations

import difflib

from beadsmail import permissions
from beadsmail.errors import InvalidInput, Misaddressed, NotFound, PermissionDenied
from beadsmail.index import registry

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    from typing import Any

BUILTIN_CHANNELS = ("review-queue", "review-log")


def check_send(index: Any, config: dict, sender: str, targets: list[str],
               strict: bool | None = None) -> tuple[list[str], list[dict]]:
    """Raise PermissionDenied for a send the contacts ACL refuses (Misaddressed for one
    that would leave a dead letter under strict addressing); return the warnings and
    the dead letters (``{"recipient", "reason", "did_you_mean"}``) the send makes."""
    conn = index.conn
    roster = {a["id"]: a for a in registry.agents(conn, include_unregistered=True)}
    live = [a for a in roster.values() if a["registered"]]
    if config.get("acl", {}).get("contacts") and live:
        _check_contacts(conn, roster, sender, targets)
    warnings, dead = [], []
    for target in targets:
        if target == "*":
            if not live:
                warnings.append("warning: no agent is registered yet; the broadcast is stored "
                                "and reaches agents as they register")
            continue
        if target.startswith("@"):
            found = _check_group(conn, target[1:])
        elif target.startswith("#"):
            found = _check_channel(conn, target[1:])
        else:  # with no roster at all, any identity may receive mail
            found = _check_agent(roster.get(target), target, [a["id"] for a in live]) if live else None
        if found is not None:
            warnings.append(found[0])
            dead.append(found[1])
    if dead and (config.get("mail", {}).get("strict") if strict is None else strict):
        raise Misaddressed(dead)
    return warnings, dead


def near(name: str, known: list[str]) -> list[str]:
    """Close matches of ``name`` among ``known`` (case-insensitive first)."""
    folded = {k.lower(): k for k in known}
    if name.lower() in folded and folded[name.lower()] != name:
        return [folded[name.lower()]]
    return difflib.get_close_matches(name, known, n=3, cutoff=0.5)


def _letter(target: str, reason: str, known: list[str], mark: str = "",
            key: str | None = None) -> tuple[str, dict]:
    """(the did-you-mean text, the dead letter) of ``target``."""
    found = [mark + f for f in near(key or target, known)]
    hint = f" (did you mean {', '.join(found)}?)" if found else ""
    return hint, {"recipient": target, "reason": reason, "did_you_mean": found}


def _queued(target: str, when: str) -> str:
    return (f"the message is stored as a dead letter and delivered when {target} {when}; "
            "see 'bd dlq list'")


def _check_agent(row: dict | None, target: str, live: list[str]) -> tuple[str, dict] | None:
    if row is None:
        hint, letter = _letter(target, "unknown", live)
        return (f"warning: {target} is not a registered agent{hint}; "
                + _queued(target, "registers"), letter)
    if not row["registered"]:
        hint, letter = _letter(target, "unregistered", live)
        return f"warning: {target} is unregistered{hint}; " + _queued(target, "registers again"), letter
    if row["status"] == "stopped":
        return (f"warning: {target} is stopped; " + _queued(target, "is active again"),
                _letter(target, "stopped", [])[1])
    return None


def _check_group(conn, group: str) -> tuple[str, dict] | None:
    groups = registry.groups(conn)
    if group in groups:
        return None
    hint, letter = _letter("@" + group, "empty group", groups, "@", group)
    return (f"warning: no registered agent is in group @{group}{hint}; "
            "the message is stored as a dead letter and reaches agents who join the group", letter)


def _check_channel(conn, name: str) -> tuple[str, dict] | None:
    known = [c["name"] for c in registry.channels(conn)]
    if name in known or name in BUILTIN_CHANNELS:
        return None
    hint, letter = _letter("#" + name, "no channel", known + list(BUILTIN_CHANNELS), "#", name)
    return (f"warning: channel #{name} does not exist{hint}; the message is stored "
            f"as a dead letter (a manager can create it: 'bd channel create {name}')", letter)


def _check_contacts(conn, roster: dict, sender: str, targets: list[str]) -> None:
    me = roster.get(sender)
    if me and me["registered"] and me["tier"] == 1:
        return
    how = (f"ask a manager to run 'bd contacts allow {sender} {{}}', or message a tier 1 agent "
           "or a #channel")
    for target in targets:
        if target == "*":
            raise PermissionDenied(f"the contacts ACL is on and {sender} is not a tier 1 agent, so "
                                   "it may not broadcast to '*'; post to a #channel instead")
        if target.startswith("#"):
            continue
        if target.startswith("@"):
            members = [a["id"] for a in roster.values()
                       if a["registered"] and a["group"] == target[1:] and a["id"] != sender]
            refused = [m for m in members if not _may_message(conn, roster, sender, m)]
            if refused:
                raise PermissionDenied(
                    f"the contacts ACL refuses {target}: {sender} is not a contact of "
                    f"{', '.join(refused)}; " + how.format(refused[0]))
        elif not _may_message(conn, roster, sender, target):
            raise PermissionDenied(f"the contacts ACL refuses the message: {target} is not a "
                                   f"contact of {sender}; " + how.format(target))


def _may_message(conn, roster: dict, sender: str, target: str) -> bool:
    if target == sender:
        return True
    row = roster.get(target)
    if row and row["registered"] and row["tier"] == 1:
        return True
    return registry.contact_allowed(conn, sender, target)


# -- the dead-letter queue ---------------------------------------------------------

def _dead(conn) -> dict[str, str]:
    """Recipients that cannot receive now, with the reason."""
    live_channels = [c["name"] for c in registry.channels(conn)] + list(BUILTIN_CHANNELS)
    return dict(registry.dead_targets(conn, live_channels))


def _hint(conn, target: str) -> list[str]:
    if target.startswith("@"):
        return ["@" + g for g in near(target[1:], registry.groups(conn))]
    if target.startswith("#"):
        known = [c["name"] for c in registry.channels(conn)] + list(BUILTIN_CHANNELS)
        return ["#" + c for c in near(target[1:], known)]
    return near(target, [a["id"] for a in registry.agents(conn)])


def dead_letters(ws) -> list[dict]:
    """Messages no recipient could take yet and nobody resolved, oldest first."""
    ws.refresh()
    conn = ws.index.conn
    out = []
    for target, reason in _dead(conn).items():
        entries = registry.undelivered(conn, target)
        hint = _hint(conn, target) if entries else []
        out += [{**e, "recipient": target, "reason": reason, "did_you_mean": hint} for e in entries]
    return sorted(out, key=lambda e: (e["created_at"], e["message"], e["recipient"]))


def resolve_dead_letter(ws, actor: str, token: str, recipient: str | None = None,
                        note: str | None = None) -> dict:
    """Clear a message's dead letters (one recipient's, or all); by its sender or a manager."""
    if note is not None and len(note) > 500:
        raise InvalidInput("--note must be at most 500 characters")
    ws.refresh()
    message_id = ws.index.resolve(token, ws.prefix, kinds=("message",), what="message")
    items: list[tuple[str, dict]] = []  # filled under the lock

    def check(index) -> None:
        conn = index.conn
        found = registry.message_targets(conn, message_id)
        if found is None:
            raise NotFound(f"message {message_id} was deleted; nothing to resolve")
        sender, targets = found
        if actor != sender:
            permissions.require(index, actor, "dlq.resolve", ws.config["agents"]["default_role"])
        dead = _dead(conn)
        pending = [t for t in targets if t in dead and any(
            e["message"] == message_id for e in registry.undelivered(conn, t))]
        if recipient is not None:
            if recipient not in pending:
                raise NotFound(f"message {message_id} has no dead letter for {recipient}; "
                               f"its dead letters: {', '.join(pending) or 'none'}")
            pending = [recipient]
        if not pending:
            raise NotFound(f"message {message_id} is not in the dead-letter queue; see 'bd dlq list'")
        items.extend(("dead_letter", {"op": "resolve", "message": message_id, "recipient": t,
                                      **({"note": note} if note else {})}) for t in pending)

    written = ws.write(actor, items, f"dlq: resolve {message_id}", check=check)
    return {"message": message_id, "resolved": [r["recipient"] for r in written.records],
            "records": [r["id"] for r in written.records]}
