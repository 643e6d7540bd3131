"""Roles and what each may do: the bttask and btmsg permission matrices in one table.

Roles: manager, architect, tester, reviewer, project (registered with
``bd agent register``) and the default role of identities that never registered
(``agents.default_role``, ``worker``). While nobody at all is registered, every
identity acts as a manager, so a single user or a fresh repository is never
locked out; the matrix applies once a roster exists.

``mail.read.others`` (reading other agents' mail and channels one is not in,
which only a ``bd serve`` token is ever refused) is checked with
``registered_can``: the empty-roster rule does not grant it, so a token never
reads more than its own agent's mail unless that agent is a registered manager.
"""

from __future__ import annotations

from beadsmail.errors import PermissionDenied
from beadsmail.index import registry

EVERYONE = {"task.read", "task.comment", "mail.send", "mail.read", "channel.post",
            "channel.join", "agent.status.self", "agent.register.self"}
MATRIX: dict[str, set[str]] = {
    "manager": EVERYONE | {"task.create", "task.status", "task.assign", "task.edit", "task.order",
                           "task.delete", "channel.create", "channel.delete", "message.delete",
                           "agent.status.others", "agent.register.others", "contacts.manage",
                           "dlq.resolve", "mail.read.others"},
    "reviewer": EVERYONE | {"task.status"},
    "architect": EVERYONE | {"task.create"},
    "tester": EVERYONE,
    "project": EVERYONE,
    "worker": EVERYONE,
}
ROLES = tuple(MATRIX)


def role_of(index, identity: str, default_role: str = "worker") -> str:
    """The role an identity acts with (see the module docstring)."""
    role = registry.registered_role(index.conn, identity)
    if role:
        return role
    return default_role if registry.anyone_registered(index.conn) else "manager"


def can(role: str, capability: str) -> bool:
    return capability in MATRIX.get(role, EVERYONE)


def registered_can(index, identity: str, capability: str) -> bool:
    """``can`` for the role an identity registered with; never through the empty-roster rule."""
    role = registry.registered_role(index.conn, identity)
    return bool(role) and can(role, capability)


def require(index, identity: str, capability: str, default_role: str = "worker") -> str:
    """Raise PermissionDenied naming the missing capability; return the role."""
    role = role_of(index, identity, default_role)
    if not can(role, capability):
        raise PermissionDenied(
            f"{identity} (role {role}) lacks the '{capability}' capability; "
            "ask a manager, or register with a role that has it")
    return role
