"""The contacts ACL: which agent may message which, when ``acl.contacts`` is on.

A grant is a ``contact`` record ``a -> b`` (op allow or revoke), folded
last-writer-wins per pair; ``--both`` writes the two directions in one commit.
Only managers change contacts. The rule itself is enforced at send time by
``addressing.check_send``.
"""

from __future__ import annotations

from beadsmail import permissions, records
from beadsmail.errors import InvalidInput
from beadsmail.index import registry


def list_contacts(ws, agent: str | None = None) -> dict:
    ws.refresh()
    if agent is not None:
        records.check_identity(agent, "agent id")
    pairs = registry.contacts(ws.index.conn, agent)
    return {"enabled": bool(ws.config["acl"]["contacts"]),
            "contacts": [{"from": a, "to": b} for a, b in pairs]}


def _change(ws, actor: str, a: str, b: str, both: bool, op: str) -> tuple[dict, list[str]]:
    records.check_identity(a, "agent id")
    records.check_identity(b, "agent id")
    if a == b:
        raise InvalidInput(f"{a} is always its own contact: name two different agents")
    pairs = [(a, b), (b, a)] if both else [(a, b)]
    default_role = ws.config["agents"]["default_role"]
    warnings: list[str] = []

    def check(index) -> None:
        permissions.require(index, actor, "contacts.manage", default_role)
        known = {r["id"] for r in registry.agents(index.conn)}
        warnings.extend(f"warning: {x} is not a registered agent; the {op} applies when it "
                        "registers" for x in (a, b) if x not in known)

    written = ws.write(actor, [("contact", {"op": op, "a": x, "b": y}) for x, y in pairs],
                       f"contacts: {op} {a} {'<->' if both else '->'} {b}", check=check)
    return {"op": op, "pairs": [{"from": x, "to": y} for x, y in pairs],
            "records": [r["id"] for r in written.records]}, warnings + written.warnings


def allow(ws, actor: str, a: str, b: str, both: bool = False) -> tuple[dict, list[str]]:
    """Let ``a`` message ``b`` (and ``b`` message ``a`` with ``both``)."""
    return _change(ws, actor, a, b, both, "allow")


def revoke(ws, actor: str, a: str, b: str, both: bool = False) -> tuple[dict, list[str]]:
    """Stop ``a`` messaging ``b`` (and the reverse with ``both``)."""
    return _change(ws, actor, a, b, both, "revoke")
