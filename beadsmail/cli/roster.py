"""The roster reads without typer: ``bd agent heartbeat``, ``bd agent list``, ``bd status``.

Agents and the page run these often (a heartbeat after many actions, the roster
and overview to decide whom to ask), and importing typer costs more than the
command itself. ``cli.main`` hands them here (``FAST``) first; anything not
fully understood (``--help``, an unknown option, a value given twice) returns
False and the typer app in ``cli.agents`` parses it, calling the same
``run_*`` functions, so both paths behave alike. The text renderers live here
for the same reason.
"""

from __future__ import annotations

from beadsmail.cli import argv, env
from beadsmail.cli.output import emit


def fast(args: list[str]) -> bool:
    """``bd agent heartbeat|list ...`` without typer; False for anything else."""
    if args[:1] == ["heartbeat"]:
        parsed = argv.parse(args[1:], flags=("--json",), options=("--identity",))
        if parsed is not None:
            run_heartbeat(parsed[0].get("--identity"), parsed[0]["--json"])
            return True
    elif args[:1] == ["list"]:
        parsed = argv.parse(args[1:], flags=("--json", "--all"), options=("--group",))
        if parsed is not None:
            opts = parsed[0]
            run_list(opts["--all"], opts.get("--group"), opts["--json"])
            return True
    return False


def fast_status(args: list[str]) -> bool:
    """``bd status [--identity ID] [--json]`` without typer; False for anything else."""
    parsed = argv.parse(args, flags=("--json",), options=("--identity",))
    if parsed is None:
        return False
    run_status(parsed[0].get("--identity"), parsed[0]["--json"])
    return True


# -- the commands (the typer app in ``cli.agents`` calls these too) ---------------

def run_heartbeat(identity: str | None, as_json: bool) -> None:
    from beadsmail import agents

    ws = env.workspace()
    emit(agents.heartbeat(ws, env.identity(ws, identity)), as_json, render_heartbeat)


def run_list(include_all: bool, group: str | None, as_json: bool) -> None:
    from beadsmail import agents

    emit(agents.list_agents(env.workspace(), include_all, group), as_json, render_agents)


def run_status(identity: str | None, as_json: bool) -> None:
    from beadsmail import status

    ws = env.workspace()
    emit(status.overview(ws, env.identity(ws, identity)), as_json, render_status)


# -- text -------------------------------------------------------------------------

def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def attention(a: dict) -> str:
    """A reviewer's review queue and attention score, ``-`` for other roles."""
    if a.get("review_queue_count") is None:
        return "-"
    return f"{a['review_queue_count']} ({a['attention_score']})"


def render_agents(rows: list[dict]) -> str:
    if not rows:
        return "no agents registered (add one with 'bd agent register --id ID --role ROLE')"
    lines = [f"{'ID':<20} {'ROLE':<10} {'GROUP':<12} {'T'} {'LIVENESS':<12} {'SEEN':<10} "
             f"{'UNREAD/OPEN':<12} {'REVIEW (ATTENTION)':<19} SIGNED"]
    lines += [f"{a['id']:<20} {a['role'] or '-':<10} {a['group'] or '-':<12} {a['tier'] or '-'} "
              f"{a['liveness']:<12} {ago(a['seen_seconds_ago']):<10} "
              f"{str(a['unread']) + '/' + str(a['open']):<12} {attention(a):<19} "
              f"{a.get('verified', '-')}" for a in rows]
    return "\n".join(lines)


def render_status(d: dict) -> str:
    lines = [f"{d['identity']}: {d['unread']} unread, {d['open']} open", "",
             render_agents(d["agents"]), ""]
    lines += [f"#{c['name']:<20} {plural(c['members'], 'member')}, "
              f"{plural(c['messages'], 'message')}" for c in d["channels"]]
    lines += ["", f"dead letters: {d['dead_letters']}"
              + (f" (to {', '.join(d['dead_letter_recipients'])})" if d["dead_letters"] else ""),
              f"review queue: {d['review_queue']} task(s)"]
    if d["stalled"]:
        lines.append(f"stalled: {', '.join(d['stalled'])}")
    held = d.get("reservations", [])
    lines.append(f"reservations: {len(held)}" + "".join(
        f"\n  {r['holder']:<14} {r['mode']:<9} {r['pattern']}  until {r['until'][11:16]} UTC"
        + ("  (LOST)" if r["state"] == "lost" else "") for r in held[:20]))
    return "\n".join(lines)


def render_heartbeat(d: dict) -> str:
    return f"{d['agent']} alive at {d['last_seen']}" + (" (committed)" if d["committed"] else "")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
