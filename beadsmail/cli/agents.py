"""CLI commands: the agent registry, contacts, dead letters, audit and status (channels in
``cli.channels``).

``bd agent heartbeat``, ``bd agent list`` and ``bd status`` run without typer
first (``cli.roster``, through ``cli.FAST``); the commands here parse what that
fast path leaves over and call the same functions. typer is imported inside
``register()``, where the command annotations are evaluated (no
``from __future__ import annotations``).
"""

from typing import Annotated

from beadsmail import addressing, agents, audit, contacts
from beadsmail.cli import env
from beadsmail.cli.output import emit
from beadsmail.cli.roster import ago, run_heartbeat, run_list, run_status


def render_agent(a: dict) -> str:
    lines = [f"{a['id']} ({a['name']}): {a['role']}, group {a['group'] or '-'}, tier {a['tier']}, "
             f"model {a['model'] or '-'}",
             f"status {a['status']}, {a['liveness']}, last seen {ago(a['seen_seconds_ago'])}, "
             f"{a['unread']} unread, {a['open']} open (not acked)"]
    if a.get("verified"):
        lines.append(f"profile signed: {a['verified']}" + (
            f" (replica {a['signed_by']}" + (f", via bd {a['via']}" if a.get("via") else "") + ")"
            if a.get("signed_by") else ""))
    if a.get("review_queue_count") is not None:
        lines.append(f"review queue: {a['review_queue_count']} task(s), attention score "
                     f"{a['attention_score']}")
    if a.get("details"):
        lines.append("details: " + ", ".join(f"{k} {v}" for k, v in sorted(a["details"].items())))
    if a.get("channels") is not None:
        lines.append("channels: " + (", ".join("#" + c for c in a["channels"]) or "none"))
        lines.append("contacts: " + (", ".join(a["contacts"]) or "none"))
    return "\n".join(lines)


def render_dlq(rows: list[dict]) -> str:
    if not rows:
        return "the dead-letter queue is empty"
    lines = []
    for d in rows:
        hint = f" (did you mean {', '.join(d['did_you_mean'])}?)" if d["did_you_mean"] else ""
        lines.append(f"{d['message']}  to {d['recipient']} [{d['reason']}]{hint}  from {d['from']}: "
                     f"{d['subject']}")
    return "\n".join(lines)


def render_audit(rows: list[dict]) -> str:
    if not rows:
        return "no matching records"
    return "\n".join(f"{e['at'][:19]}  {e['actor']:<16} {e['action']:<18} {e['target'] or '-'}"
                     + (f"  {e['detail']}" if e["detail"] else "") for e in rows)


def render_roles(d: dict) -> str:
    """The capability x role table, then who may do what beyond it."""
    roles = list(d["roles"])
    width = max(len(c["capability"]) for c in d["capabilities"])
    lines = ["  ".join(["CAPABILITY".ljust(width), *(r.upper() for r in roles), "MEANS"])]
    for c in d["capabilities"]:
        cells = [("yes" if r in c["roles"] else "-").ljust(len(r)) for r in roles]
        extra = " (and a task's assignee, on that task)" if c["assignee"] else ""
        lines.append("  ".join([c["capability"].ljust(width), *cells, c["means"] + extra]))
    lines.append("")
    lines.append("A task's assignee may move it whatever their role (tasks.strict_roles: false); "
                 "set tasks.strict_roles: true for the matrix alone." if d["assignee"] else
                 "tasks.strict_roles is true: only the matrix decides who moves tasks.")
    lines.append(f"Identities that never registered act as {d['default_role']} "
                 "(agents.default_role); while nobody is registered, everyone acts as a manager"
                 + (" (nobody is registered yet)." if not d["anyone_registered"] else "."))
    if d.get("identity"):
        lines.append(f"{d['identity']} acts as {d['role']}.")
    return "\n".join(lines)


def _register_agent_app(app, typer, Json, Identity) -> None:
    agent_app = typer.Typer(help="The agent registry: roles, groups, status, liveness.",
                            no_args_is_help=True)
    _roster_commands(agent_app, typer, Json, Identity)
    _liveness_commands(agent_app, typer, Json, Identity)
    from beadsmail.cli import trust

    trust.register(agent_app, typer, Json, Identity)
    app.add_typer(agent_app, name="agent")


def _roster_commands(agent_app, typer, Json, Identity) -> None:
    AgentId = Annotated[str, typer.Argument(help="Agent id.", show_default=False)]
    workspace, identity = env.workspace, env.identity

    @agent_app.command("register")
    def register_(
        id_: Annotated[str, typer.Option("--id", help="Agent id.", show_default=False)],
        role: Annotated[str | None, typer.Option(
            help="manager, architect, tester, reviewer, project or worker.")] = None,
        name: Annotated[str | None, typer.Option(help="Display name (default: the id).")] = None,
        group: Annotated[str | None, typer.Option(help="Group (for @group mail).")] = None,
        tier: Annotated[int | None, typer.Option(help="1 (may message anyone) or 2 (default).")] = None,
        model: Annotated[str | None, typer.Option(help="Model name.")] = None,
        update: Annotated[bool, typer.Option("--update", help="Change a registered agent.")] = False,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Register an agent (or change one with --update).  Example: bd agent register --id w1 --role tester --group core"""
        ws = workspace()
        result = agents.register(ws, identity(ws, identity_), id_, role=role, name=name,
                                 group=group, tier=tier, model=model, update=update)
        emit(result, json_, lambda a: f"{'updated' if update else 'registered'} {a['id']}\n"
             + render_agent(a))

    @agent_app.command("unregister")
    def unregister_(agent_id: AgentId, identity_: Identity = None, json_: Json = False) -> None:
        """Take an agent off the roster (its mail stays).  Example: bd agent unregister w1"""
        ws = workspace()
        emit(agents.unregister(ws, identity(ws, identity_), agent_id), json_,
             lambda d: f"unregistered {d['agent']}")

    @agent_app.command("list")
    def list_(
        all_: Annotated[bool, typer.Option("--all", help="Include unregistered agents.")] = False,
        group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
        json_: Json = False,
    ) -> None:
        """List agents with liveness and unread counts.  Example: bd agent list --json"""
        run_list(all_, group, json_)

    @agent_app.command("roles")
    def roles_(identity_: Identity = None, json_: Json = False) -> None:
        """What each role may do, and the role you act with.  Example: bd agent roles --json"""
        ws = workspace()
        emit(agents.roles(ws, identity(ws, identity_)), json_, render_roles)

    @agent_app.command("show")
    def show_(agent_id: AgentId, json_: Json = False) -> None:
        """One agent's profile, liveness, channels and contacts.  Example: bd agent show w1"""
        emit(agents.show(workspace(), agent_id), json_, render_agent)

def _liveness_commands(agent_app, typer, Json, Identity) -> None:
    AgentId = Annotated[str, typer.Argument(help="Agent id.", show_default=False)]
    workspace, identity = env.workspace, env.identity

    @agent_app.command("status")
    def status_(
        agent_id: AgentId,
        new_status: Annotated[str, typer.Argument(help="active, sleeping or stopped.",
                                                  metavar="STATUS", show_default=False)],
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Set an agent's status (another agent's: managers only).  Example: bd agent status w1 sleeping"""
        ws = workspace()
        emit(agents.set_status(ws, identity(ws, identity_), agent_id, new_status), json_,
             lambda a: f"{a['id']} is {a['status']}")

    @agent_app.command("heartbeat")
    def heartbeat_(identity_: Identity = None, json_: Json = False) -> None:
        """Say this agent is alive (cheap; committed at most every agents.heartbeat_interval).  Example: bd agent heartbeat --identity w1"""
        run_heartbeat(identity_, json_)

    @agent_app.command("retire")
    def retire_(
        stale: Annotated[str, typer.Option("--stale", help="Silent this long: 90s, 30m, 12h, 7d.",
                                           show_default=False)],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list them.")] = False,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Unregister every agent not seen for a while (managers).  Example: bd agent retire --stale 7d --dry-run"""
        ws = workspace()
        emit(agents.retire(ws, identity(ws, identity_), stale, dry_run), json_,
             lambda d: ("would retire: " if d["dry_run"] else "retired: ")
             + (", ".join(d["retired"]) or "nobody"))


def _register_contacts_app(app, typer, Json, Identity) -> None:
    Sender = Annotated[str, typer.Argument(help="The agent that may send.", show_default=False)]
    Receiver = Annotated[str, typer.Argument(help="The agent it may message.", show_default=False)]
    Both = Annotated[bool, typer.Option("--both", help="Both directions.")]
    workspace, identity = env.workspace, env.identity
    contacts_app = typer.Typer(help="The contacts ACL (acl.contacts in .beads/config.yaml).",
                               no_args_is_help=True)
    def render(d: dict) -> str:
        arrow = ", ".join(f"{p['from']} -> {p['to']}" for p in d["pairs"])
        return f"{'allowed' if d['op'] == 'allow' else 'revoked'}: {arrow}"

    @contacts_app.command("list")
    def list_(agent: Annotated[str | None, typer.Option(help="Only this agent's.")] = None,
              json_: Json = False) -> None:
        """List contact grants and whether the ACL is on.  Example: bd contacts list --agent w1"""
        emit(contacts.list_contacts(workspace(), agent), json_, lambda d: "\n".join(
            [f"contacts ACL: {'on' if d['enabled'] else 'off'}"]
            + [f"{c['from']} -> {c['to']}" for c in d["contacts"]]))

    @contacts_app.command("allow")
    def allow_(a: Sender, b: Receiver, both: Both = False, identity_: Identity = None, json_: Json = False) -> None:
        """Let A message B (managers).  Example: bd contacts allow w1 w2 --both"""
        ws = workspace()
        result, warnings = contacts.allow(ws, identity(ws, identity_), a, b, both)
        emit(result, json_, render, warnings)

    @contacts_app.command("revoke")
    def revoke_(a: Sender, b: Receiver, both: Both = False, identity_: Identity = None, json_: Json = False) -> None:
        """Stop A messaging B (managers).  Example: bd contacts revoke w1 w2"""
        ws = workspace()
        result, warnings = contacts.revoke(ws, identity(ws, identity_), a, b, both)
        emit(result, json_, render, warnings)

    app.add_typer(contacts_app, name="contacts")


def _register_dlq_app(app, typer, Json, Identity) -> None:
    workspace, identity = env.workspace, env.identity
    dlq_app = typer.Typer(help="Dead letters: messages no recipient could take yet.",
                          no_args_is_help=True)

    @dlq_app.command("list")
    def list_(json_: Json = False) -> None:
        """List undelivered messages by recipient.  Example: bd dlq list --json"""
        emit(addressing.dead_letters(workspace()), json_, render_dlq)

    @dlq_app.command("resolve")
    def resolve_(
        message: Annotated[str, typer.Argument(help="Message id (or a unique prefix).",
                                               show_default=False)],
        recipient: Annotated[str | None, typer.Option(help="Only this recipient's entry.")] = None,
        note: Annotated[str | None, typer.Option("--note", "-m", help="Why it is resolved.")] = None,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Clear a dead letter (its sender or a manager).  Example: bd dlq resolve bd-3k9x"""
        ws = workspace()
        emit(addressing.resolve_dead_letter(ws, identity(ws, identity_), message, recipient, note),
             json_, lambda d: f"resolved {d['message']} for {', '.join(d['resolved'])}")

    app.add_typer(dlq_app, name="dlq")


def register(app) -> None:
    import typer

    from beadsmail.cli import channels as channel_cli
    from beadsmail.cli.common import Identity, Json

    for part in (_register_agent_app, _register_contacts_app, _register_dlq_app):
        part(app, typer, Json, Identity)
    channel_cli.register(app)
    workspace = env.workspace

    @app.command("audit")
    def audit_(
        agent: Annotated[str | None, typer.Option(help="Only what this identity did.")] = None,
        since: Annotated[str | None, typer.Option(help="From this time: 2h, 7d, 2026-11-23.")] = None,
        action: Annotated[str | None, typer.Option(
            help="An action (message.send) or family (message, agent, channel, contact, task, "
                 "dlq, purge).")] = None,
        limit: Annotated[int, typer.Option(help="At most this many entries.")] = 50,
        json_: Json = False,
    ) -> None:
        """Who did what, newest first, from the records.  Example: bd audit --agent w1 --since 1d"""
        emit(audit.log(workspace(), agent, since, action, limit), json_, render_audit)

    @app.command("status")
    def status_(identity_: Identity = None, json_: Json = False) -> None:
        """Overview: agents, liveness, unread, channels, dead letters, review queue.  Example: bd status --json"""
        run_status(identity_, json_)
