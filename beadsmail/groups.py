"""Groups: the teams agents register in, and what a view scoped to one group shows.

An agent is registered in at most one group (``bd agent register --group``,
``btmsg register --group``). Every message carries ``sender_group``, its
sender's registered group at the moment it was written (null: none). ``stamp``
sets it under the store lock for every message a command writes, whichever path
wrote it (mail, channel posts, the task board's review posts, the WebSocket
bus), so it cannot differ from the roster the write was checked against. Every
channel belongs to the group given when it was created, else its creator's
group; a channel without a group (``#review-queue``, ``#review-log``, a
project's channel, one made by someone in no group) is shared by all groups.

A view scoped to group G (btmsg's ``get_agents``/``get_feed``/``get_channels``
and ``btmsg read``; ``--group G`` in ``bd``; ``?group=G`` on ``bd serve``) shows:

- agents: those registered in G;
- channels: G's channels and the shared ones;
- a channel's history: nothing of another group's channel (not found); in a
  shared channel, the posts of G's agents and of senders in no group;
- the feed (message log): messages whose sender was in G;
- an inbox: everything addressed to the agent by name, and what reaches it
  through ``*``, ``@G`` or a channel from senders in G or in no group;
- tasks: G's tasks.

A group value must name a group the store knows (of an agent, a channel or a
task); anything else is refused with the known names, never ignored, since an
ignored scope would show every group's traffic.
"""

from __future__ import annotations

from beadsmail import records
from beadsmail.errors import InvalidInput
from beadsmail.index import registry


def of(conn, agent_id: str) -> str | None:
    """The group ``agent_id`` is registered in now (None: unregistered or in none)."""
    return registry.group_of(conn, agent_id)


def stamp(index, items: list[tuple[str, dict]]) -> None:
    """Give every message about to be written its sender's group (under the store lock)."""
    for kind, fields in items:
        if kind == "message" and "sender_group" not in fields:
            fields["sender_group"] = of(index.conn, fields["from"])


def require(conn, group: str) -> str:
    """``group`` if the store knows it; InvalidInput naming the known groups otherwise."""
    if not isinstance(group, str) or not records.IDENTITY_RE.match(group):
        raise InvalidInput(f"invalid group {str(group)[:80]!r}: a group is 1-64 letters, "
                           "digits, '.', '_' or '-', starting with a letter or digit")
    known = registry.known_groups(conn)
    if group not in known:
        raise InvalidInput(f"unknown group {group!r}: known groups are "
                           f"{', '.join(known) or 'none yet'} (an agent joins one with "
                           "'bd agent register --group')")
    return group


def sees_channel(channel_group: str | None, group: str | None) -> bool:
    """Whether a view scoped to ``group`` (None: unscoped) shows a channel."""
    return group is None or channel_group is None or channel_group == group
