"""Roles and what each may do: the bttask and btmsg permission matrices in one table.

Roles: manager, architect, tester, reviewer, project (registered with
``bd agent register``) and the default role of identities that never registered
(``agents.default_role``, ``worker``). While nobody at all is registered, every
identity acts as a manager, so a single user or a fresh repository is never
locked out; the matrix applies once a roster exists.

On top of the matrix, a task's assignee may move that task (``ASSIGNEE``), so
the basic loop (take a task, work on it, send it to review) needs nobody else;
``tasks.strict_roles: true`` restores bttask's matrix, where only managers and
reviewers change a status. ``allows`` is the whole rule, a pure function of the
role, the capability, the acting identity and the task as it stands, so the
same rule serves a write's check and a check at fold time.

``mail.read.others`` (reading other agents' mail and channels one is not in,
which only a ``bd serve`` token is ever refused) is checked with
``registered_can``: the empty-roster rule does not grant it, so a token never
reads more than its own agent's mail unless that agent is a registered manager.
"""

from __future__ import annotations

from beadsmail.errors import InvalidInput, PermissionDenied
from beadsmail.index import registry

CAPABILITIES = {
    "task.read": "list and show tasks",
    "task.comment": "comment on a task",
    "task.create": "create a task",
    "task.status": "move a task to another status",
    "task.assign": "assign a task",
    "task.edit": "edit a task's title, description, priority, parent or group",
    "task.order": "set a task's sort order",
    "task.delete": "delete a task",
    "mail.send": "send mail",
    "mail.read": "read one's own mail",
    "mail.read.others": "read others' mail and channels one is not in (bd serve tokens; "
                        "registered managers only)",
    "message.delete": "delete messages",
    "channel.post": "post to channels",
    "channel.join": "join and leave channels",
    "channel.create": "create channels and add others to them",
    "channel.delete": "delete channels",
    "agent.status.self": "set one's own status",
    "agent.register.self": "register oneself",
    "agent.status.others": "change another agent's status",
    "agent.register.others": "register, unregister and retire others; give the manager role",
    "contacts.manage": "manage the contacts ACL",
    "dlq.resolve": "resolve others' dead letters",
}
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
# What a task's assignee may do to that task whatever their role, unless tasks.strict_roles.
ASSIGNEE = frozenset({"task.status"})
STRICT_KEY = "tasks.strict_roles"


def role_of(index, identity: str, default_role: str = "worker") -> str:
    """The role an identity acts with (see the module docstring)."""
    role = registry.registered_role(index.conn, identity)
    if role:
        return role
    return default_role if registry.anyone_registered(index.conn) else "manager"


def can(role: str, capability: str) -> bool:
    return capability in MATRIX.get(role, EVERYONE)


def allows(role: str, capability: str, *, actor: str | None = None, task: dict | None = None,
           strict: bool = False) -> bool:
    """The role rule: may ``actor``, acting with ``role``, use ``capability`` (on ``task``,
    a task as it stands, with its ``assigned_to``)? ``strict``: the matrix alone."""
    if can(role, capability):
        return True
    return (not strict and capability in ASSIGNEE and task is not None and actor is not None
            and task.get("assigned_to") == actor)


def strict(config: dict) -> bool:
    """``tasks.strict_roles`` of a configuration: the matrix alone moves tasks."""
    value = config.get("tasks", {}).get("strict_roles", False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{STRICT_KEY} in .beads/config.yaml is {value!r}: "
                           "set it to true or false")
    return value


def roles_with(capability: str) -> list[str]:
    """The roles whose matrix grants ``capability``."""
    return [role for role in ROLES if capability in MATRIX[role]]


def registered_can(index, identity: str, capability: str) -> bool:
    """``can`` for the role an identity registered with; never through the empty-roster rule."""
    role = registry.registered_role(index.conn, identity)
    return bool(role) and can(role, capability)


def require(index, identity: str, capability: str, default_role: str = "worker", *,
            task: dict | None = None, strict: bool = False) -> str:
    """Raise PermissionDenied naming the missing capability and who has it; return the role."""
    role = role_of(index, identity, default_role)
    if not allows(role, capability, actor=identity, task=task, strict=strict):
        raise PermissionDenied(refusal(identity, role, capability, task, strict))
    return role


def refusal(identity: str, role: str, capability: str, task: dict | None = None,
            strict: bool = False) -> str:
    """One sentence: who was refused what, and which roles (or the assignee) could."""
    could = " and ".join(filter(None, [", ".join(roles_with(capability)) or "no role",
                                       "the task's assignee" if capability in ASSIGNEE
                                       and not strict else ""]))
    what = f" on task {task['id']}" if task else ""
    note = (f" ({STRICT_KEY} is on: assignees move only as their role allows)"
            if strict and capability in ASSIGNEE else "")
    return (f"{identity} (role {role}) lacks the '{capability}' capability{what}; it is for "
            f"{could}{note}: ask one of them, or register with a role that has it")


def describe(default_role: str = "worker", strict: bool = False) -> dict:
    """What each role may do (``bd agent roles``)."""
    return {
        "roles": {role: sorted(MATRIX[role]) for role in ROLES},
        "capabilities": [{"capability": cap, "means": means, "roles": roles_with(cap),
                          "assignee": cap in ASSIGNEE and not strict}
                         for cap, means in CAPABILITIES.items()],
        "assignee": sorted(ASSIGNEE) if not strict else [],
        "strict_roles": strict, "default_role": default_role,
    }
