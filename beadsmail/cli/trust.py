"""``bd agent keys`` and ``bd agent trust``: signing keys and who may write as whom.

typer is imported by the caller (``cli.agents``): no ``from __future__ import
annotations`` here either, the command annotations are evaluated.
"""

from typing import Annotated

from beadsmail.cli import env
from beadsmail.cli.output import emit


def _keys_text(d: dict) -> str:
    lines = [f"this replica: {d['replica']} ({d['policy']})", f"  {d['key']}",
             f"  {d['fingerprint']}  key file {d['key_file']}", "", "feeds:"]
    for f in d["feeds"]:
        pin = " [pinned]" if f["pinned"] else ""
        fork = f" [FORK from seq {f['fork_from_seq']}]" if f["fork_from_seq"] else ""
        lines += [f"  {f['replica']}  seq {f['verified_seq']}{pin}{fork}  "
                  f"agents: {', '.join(f['agents']) or '-'}", f"    {f['key'] or '(no key)'}"]
    return "\n".join(lines)


def _trust_text(rows: list[dict]) -> str:
    if not rows:
        return "no bindings yet (the first signed record of an identity binds it)"
    out = []
    for e in rows:
        bound = ", ".join(f"{r['replica']} ({r['how']})" for r in e["replicas"]) or "-"
        out.append(f"{e['agent']}: {bound}" + (f"; revoked: {', '.join(e['revoked'])}"
                                                 if e["revoked"] else ""))
    return "\n".join(out)


def _read_json(source: str) -> object:
    import json
    import sys

    from beadsmail.errors import InvalidInput

    try:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
        return json.loads(text)
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{source}: not JSON; give a file written by "
                           "'bd agent trust --export'") from None


def register(agent_app, typer, Json, Identity) -> None:
    from beadsmail.signing import manage

    Replica = Annotated[str | None, typer.Option(help="A replica id (see 'bd agent keys').")]

    @agent_app.command("keys")
    def keys_(
        pin: Replica = None,
        key: Annotated[str | None, typer.Option(help="With --pin: 'ssh-ed25519 AAAA...'.")] = None,
        unpin: Replica = None,
        rotate: Annotated[bool, typer.Option("--rotate", help="New key for this replica, "
                                             "announced with the old one.")] = False,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Signing keys: this replica's, and every feed's.  Example: bd agent keys --pin r1a2b3c4d5e6 --key 'ssh-ed25519 AAAA...'"""
        ws = env.workspace()
        if pin is not None or unpin is not None:
            if pin is not None and not key:
                raise typer.BadParameter("--pin needs --key 'ssh-ed25519 AAAA...'")
            emit(manage.pin(ws, pin or unpin, key if pin else None), json_,
                 lambda d: f"{d['replica']}: pinned {d['pinned'] or 'nothing'}")
        elif rotate:
            emit(manage.rotate(ws, env.identity(ws, identity_)), json_,
                 lambda d: f"rotated {d['replica']}: {d['old']} -> {d['new']}")
        else:
            emit(manage.show_keys(ws), json_, _keys_text)

    @agent_app.command("trust")
    def trust_(
        agent: Annotated[str | None, typer.Argument(help="Agent id.", show_default=False)] = None,
        add: Replica = None, revoke: Replica = None,
        publish: Annotated[bool, typer.Option("--publish", help="Also write it to the store "
                                              "so every clone applies it.")] = False,
        export: Annotated[bool, typer.Option("--export", help="Print this clone's bindings "
                                             "and feed keys as a trust file.")] = False,
        import_: Annotated[str | None, typer.Option(
            "--import", metavar="FILE", help="Bind and pin what a trust file says (- for "
            "stdin); run it on a new clone before anything else.")] = None,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Show or change which replicas may write as an agent.  Example: bd agent trust alice --add r1a2b3c4d5e6 --publish"""
        if export or import_ is not None:
            if agent is not None or add or revoke or publish or (export and import_ is not None):
                raise typer.BadParameter("--export and --import take no agent and no other option")
            if export:
                emit(manage.export_trust(env.workspace()), True, str)
                return
            ws = env.workspace(adopt=True)  # (before the first fold, or the first sync)
            result = manage.import_trust(ws, _read_json(import_), import_)
            emit(result, json_, lambda d: f"imported {d['agents']} agent binding(s) and "
                 f"{d['keys']} pinned key(s)\n" + _trust_text(d["bindings"]))
            return
        ws = env.workspace()
        if add is None and revoke is None:
            emit(manage.show_trust(ws, agent), json_, _trust_text)
            return
        if agent is None or (add and revoke):
            raise typer.BadParameter("give one agent and one of --add or --revoke")
        result = manage.change(ws, env.identity(ws, identity_), agent, add or revoke,
                               "bind" if add else "revoke", publish)
        emit(result, json_, lambda d: f"{d['op']} {d['agent']} for {d['replica']}"
             + (f" (record {d['record']})" if d["record"] else " (this clone only)"))
