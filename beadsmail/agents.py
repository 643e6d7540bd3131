"""The agent registry: who is on the roster, in which role and group, and who is alive.

Every change is an ``agent`` record carrying the whole profile after the change
(name, role, group, tier, model, status, last_seen); the index keeps the latest
(see ``index.registry``). Profiles are filled in under the store lock from the
freshly refreshed index, so a change never carries a stale copy of the rest.

Liveness is cheap: ``heartbeat`` notes the time in a local table of the index at
once, and commits an ``agent`` record with op ``heartbeat`` only when the last
committed one is older than ``agents.heartbeat_interval`` seconds, so other
clones see liveness at that interval without a commit per heartbeat. An active
agent not seen for ``agents.stalled_after`` seconds is *stalled*.

Any command an agent runs is a sign of life, not only ``heartbeat``: see
``beadsmail.liveness``, which commits through ``beat`` when a heartbeat is due.
"""

from __future__ import annotations

from datetime import UTC, datetime

from beadsmail import addressing, permissions, records
from beadsmail import liveness as signs
from beadsmail.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from beadsmail.index import mail as mail_index
from beadsmail.index import registry, roster
from beadsmail.timespec import age_seconds, parse_duration

STATUSES = ("active", "sleeping", "stopped")
TIERS = (1, 2)
PROFILE = ("name", "role", "group", "tier", "model", "status", "last_seen", "details")
# A reviewer's attention score: 10 points per task waiting in review, at most 50 (bttask).
ATTENTION_PER_TASK = 10
ATTENTION_CAP = 50


# -- reading --------------------------------------------------------------------

def reach(conn, agent_id: str) -> list[str]:
    """The shared addresses that reach an agent now: ``*``, ``@group``, its ``#channels``."""
    return mail_index.reach(conn, agent_id)


def liveness(row: dict, now: datetime, stalled_after: float) -> str:
    """unregistered, stopped, sleeping, stalled (active but silent too long) or alive."""
    if not row["registered"]:
        return "unregistered"
    if row["status"] in ("stopped", "sleeping"):
        return row["status"]
    age = age_seconds(row["last_seen"] or row["registered_at"], now)
    return "stalled" if age is None or age > stalled_after else "alive"


def view(ws, row: dict, now: datetime | None = None, pending: tuple[int, int] | None = None,
         queues: dict | None = None) -> dict:
    """An agent as commands show it: profile, liveness, unread (not read) and open (not
    acked) mail, and a reviewer's review queue. ``pending`` and ``queues``: as computed
    for a whole roster at once (``index.roster``)."""
    now = now or datetime.now(UTC)
    conn = ws.index.conn
    state = liveness(row, now, float(ws.config["agents"]["stalled_after"]))
    age = age_seconds(row["last_seen"], now)
    if pending is None:
        pending = registry.pending_counts(conn, row["id"], reach(conn, row["id"]))
    queue = review_queue(row, roster.review_queues(conn) if queues is None else queues)
    return {**row, "liveness": state, "stalled": state == "stalled",
            "seen_seconds_ago": None if age is None else round(max(age, 0.0), 1),
            "unread": pending[0], "open": pending[1], "review_queue_count": queue,
            "attention_score": None if queue is None else min(queue * ATTENTION_PER_TASK, ATTENTION_CAP)}


def review_queue(row: dict, queues: dict) -> int | None:
    """A reviewer's review queue: the tasks in review in its group (every group's, for a
    reviewer without one); None for other roles."""
    if row.get("role") != "reviewer":
        return None
    return sum(queues.values()) if row.get("group") is None else queues.get(row["group"], 0)


def roles(ws, me: str | None = None) -> dict:
    """What each role may do (``permissions.describe``), and the role ``me`` acts with."""
    default_role = ws.config["agents"]["default_role"]
    out = permissions.describe(default_role, permissions.strict(ws.config))
    ws.refresh()
    out["anyone_registered"] = registry.anyone_registered(ws.index.conn)
    if me is not None:
        out["identity"] = me
        out["role"] = permissions.role_of(ws.index, me, default_role)
    return out


def suggest(conn, name: str) -> list[str]:
    """Registered agent ids close to ``name`` (for "did you mean")."""
    return addressing.near(name, [a["id"] for a in registry.agents(conn)])


def _not_registered(conn, agent_id: str) -> NotFound:
    near = suggest(conn, agent_id)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return NotFound(f"{agent_id} is not a registered agent{hint}; see 'bd agent list --all' "
                    f"or register it with 'bd agent register --id {agent_id} --role ROLE'")


def list_agents(ws, include_all: bool = False, group: str | None = None) -> list[dict]:
    ws.refresh()
    conn = ws.index.conn
    if group is not None:
        from beadsmail import groups

        groups.require(conn, group)
    now = datetime.now(UTC)
    rows = registry.agents(conn, include_all, group)
    pending = roster.pending(conn, [row["id"] for row in rows])
    queues = roster.review_queues(conn)
    signed = signatures(conn, [row["id"] for row in rows])
    return [{**view(ws, row, now, pending[row["id"]], queues), **signed[row["id"]]}
            for row in rows]


def signatures(conn, agent_ids: list[str]) -> dict[str, dict]:
    """Each agent's profile record's ``signing.provenance``: who signed what is shown."""
    from beadsmail.index import feeds
    from beadsmail.signing import provenance_of

    rids = registry.profile_records(conn, agent_ids)
    found = feeds.signed(conn, list(rids.values()))
    return {a: provenance_of(*found.get(rids.get(a, ""), (False, None, None)))
            for a in agent_ids}


def show(ws, agent_id: str) -> dict:
    ws.refresh()
    conn = ws.index.conn
    row = registry.agent(conn, agent_id)
    if row is None:
        raise _not_registered(conn, agent_id)
    out = {**view(ws, row), **signatures(conn, [agent_id])[agent_id]}
    out["channels"] = registry.channels_of(conn, agent_id)
    out["contacts"] = sorted({b if a == agent_id else a
                              for a, b in registry.contacts(conn, agent_id)})
    return out


# -- writing --------------------------------------------------------------------

def _check_profile(role, tier, group, name, model) -> None:
    if role is not None and role not in permissions.ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(permissions.ROLES)}")
    if tier is not None and tier not in TIERS:
        raise InvalidInput(f"invalid tier {tier!r}: use 1 (may message anyone) or 2")
    if group is not None:
        records.check_identity(group, "group")
    if name is not None and not 0 < len(name) <= 200:
        raise InvalidInput("agent name must be 1-200 characters")
    if model is not None and len(model) > 200:
        raise InvalidInput("model must be at most 200 characters")


def _profile(row: dict | None, **changes) -> dict:
    base = {k: (row or {}).get(k) for k in PROFILE}
    base.update({k: v for k, v in changes.items() if v is not None})
    return base


def _write_one(ws, actor: str, agent_id: str, op: str, build) -> dict:
    """Write one ``agent`` record whose fields ``build(index, row)`` makes under the lock."""
    fields: dict = {}

    def check(index) -> None:
        fields.update(build(index, registry.agent(index.conn, agent_id)), op=op, agent=agent_id)

    written = ws.write(actor, [("agent", fields)], f"agent: {op} {agent_id}", check=check)
    return written.records[0]


def register(ws, actor: str, agent_id: str, *, role: str | None = None, name: str | None = None,
             group: str | None = None, tier: int | None = None, model: str | None = None,
             update: bool = False, details: dict | None = None) -> dict:
    """Register an agent (or, with ``update``, change a registered agent's profile).
    ``details``: free-form text facts shown with the profile (an update merges them)."""
    records.check_identity(agent_id, "agent id")
    _check_profile(role, tier, group, name, model)
    default_role = ws.config["agents"]["default_role"]

    def build(index, row):
        known = row is not None and row["registered"]
        if known and not update:
            raise Conflict(f"agent {agent_id} is already registered (role {row['role']}); pass "
                           "--update to change its profile, or choose another id")
        if update and not known:
            raise _not_registered(index.conn, agent_id)
        if not update and role is None:
            raise InvalidInput(f"pass --role: one of {', '.join(permissions.ROLES)}")
        cap = "agent.register.self" if actor == agent_id else "agent.register.others"
        acting = permissions.require(index, actor, cap, default_role)
        if role == "manager" and acting != "manager" and not (known and row["role"] == "manager"):
            raise PermissionDenied(f"{actor} (role {acting}) may not give the manager role; "
                                   "only a manager may (the 'agent.register.others' capability)")
        now = records.now_iso()
        if not known:
            return _profile(None, name=name or agent_id, role=role, group=group, tier=tier or 2,
                            model=model, status="active", last_seen=now, details=details or None)
        merged = {**(row.get("details") or {}), **details} if details else None
        return _profile(row, name=name, role=role, group=group, tier=tier, model=model,
                        details=merged)

    record = _write_one(ws, actor, agent_id, "update" if update else "register", build)
    return {**show(ws, agent_id), "record": record["id"]}


def unregister(ws, actor: str, agent_id: str) -> dict:
    default_role = ws.config["agents"]["default_role"]

    def build(index, row):
        if row is None or not row["registered"]:
            raise _not_registered(index.conn, agent_id)
        if actor != agent_id:
            permissions.require(index, actor, "agent.register.others", default_role)
        return _profile(row)

    record = _write_one(ws, actor, agent_id, "unregister", build)
    return {"agent": agent_id, "unregistered": True, "record": record["id"]}


def set_status(ws, actor: str, agent_id: str, status: str) -> dict:
    """Set an agent's status: active, sleeping or stopped (others' only as a manager)."""
    if status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    default_role = ws.config["agents"]["default_role"]

    def build(index, row):
        if row is None or not row["registered"]:
            raise _not_registered(index.conn, agent_id)
        cap = "agent.status.self" if actor == agent_id else "agent.status.others"
        permissions.require(index, actor, cap, default_role)
        return _profile(row, status=status)

    record = _write_one(ws, actor, agent_id, "update", build)
    return {**show(ws, agent_id), "record": record["id"]}


def heartbeat(ws, actor: str) -> dict:
    """Note that ``actor`` is alive; commit it only every ``agents.heartbeat_interval`` seconds."""
    conn = ws.index.conn
    row = registry.agent(conn, actor)
    if row is None or not row["registered"]:
        ws.refresh()  # it may have registered on another clone since the last fold
        row = registry.agent(conn, actor)
        if row is None or not row["registered"]:
            raise _not_registered(conn, actor)
    return beat(ws, actor)


def beat(ws, actor: str) -> dict:
    """``heartbeat`` for a caller known to be registered: note it alive here, and commit a
    heartbeat if its last committed sign of life is due (``liveness.note_alive`` too)."""
    now_text = records.now_iso()
    interval = signs.interval(ws)
    age = signs.since_committed(ws, actor, now_text)
    record_id = None
    if age >= interval:
        record_id = _write_one(ws, actor, actor, "heartbeat",
                               lambda index, r: _profile(r, last_seen=now_text))["id"]
        age = 0.0
    registry.touch(ws.index.conn, actor, now_text, now_text if record_id else None)
    return {"agent": actor, "last_seen": now_text, "committed": record_id is not None,
            "record": record_id, "next_commit_in": round(max(interval - age, 0.0), 1)}


def retire(ws, actor: str, stale: str, dry_run: bool = False) -> dict:
    """Unregister every agent not seen for ``stale`` (a duration such as ``7d``)."""
    seconds = parse_duration(stale, "--stale duration")
    default_role = ws.config["agents"]["default_role"]
    ws.refresh()
    permissions.require(ws.index, actor, "agent.register.others", default_role)

    def stale_rows(index) -> list[dict]:
        now = datetime.now(UTC)
        return [r for r in registry.agents(index.conn) if r["id"] != actor and
                (age_seconds(r["last_seen"] or r["registered_at"], now) or 0.0) > seconds]

    found = stale_rows(ws.index)
    if dry_run or not found:
        return {"retired": [r["id"] for r in found], "dry_run": dry_run, "records": []}
    items: list[tuple[str, dict]] = []  # filled under the lock, where staleness is certain

    def check(index) -> None:
        permissions.require(index, actor, "agent.register.others", default_role)
        items.extend(("agent", {**_profile(r), "op": "unregister", "agent": r["id"]})
                     for r in stale_rows(index))
        if not items:
            raise Conflict("no agent is stale any more; nothing was retired")

    written = ws.write(actor, items, f"agent: retire agents silent for {stale}", check=check)
    return {"retired": [r["agent"] for r in written.records], "dry_run": False,
            "records": [r["id"] for r in written.records]}
