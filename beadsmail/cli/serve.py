"""``bd serve`` and ``bd agent token create/list/revoke``.

The server stack is imported only inside ``bd serve`` (by ``beadsmail.server``);
token commands need nothing beyond the standard library.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from beadsmail import tokens
from beadsmail.cli.common import Identity, Json, identity, workspace
from beadsmail.cli.output import emit

token_app = typer.Typer(help="Agent tokens for 'bd serve' on a non-loopback address.",
                        no_args_is_help=True)


def _render_tokens(rows: list[dict]) -> str:
    if not rows:
        return "no tokens (create one with 'bd agent token create NAME')"
    lines = [f"{'ID':<10} {'AGENT':<20} {'CREATED':<28} {'REVOKED':<28} LABEL"]
    lines += [f"{t['id']:<10} {t['agent']:<20} {t['created_at']:<28} "
              f"{t['revoked_at'] or '-':<28} {t['label'] or ''}" for t in rows]
    return "\n".join(lines)


@token_app.command("create")
def token_create(
    agent: Annotated[str, typer.Argument(help="The agent identity the token acts as.")],
    label: Annotated[str | None, typer.Option(help="A note: where the token is used.")] = None,
    json_: Json = False,
) -> None:
    """Create a token; its secret is shown once.  Example: bd agent token create worker-1"""
    result = tokens.create(workspace().loc.state_dir, agent, label)
    emit(result, json_, lambda d: f"{d['token']}\n(token {d['id']} for {d['agent']}: "
         "shown once, keep it secret)")


@token_app.command("list")
def token_list(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    json_: Json = False,
) -> None:
    """List tokens (never their secrets).  Example: bd agent token list --all"""
    emit(tokens.list_tokens(workspace().loc.state_dir, all_), json_, _render_tokens)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (or a unique prefix).")],
    json_: Json = False,
) -> None:
    """Revoke a token at once, even for a running server.  Example: bd agent token revoke 3f2a"""
    result = tokens.revoke(workspace().loc.state_dir, token_id)
    emit(result, json_, lambda d: f"revoked token {d['id']} of {d['agent']}")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; not loopback needs tokens.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8001,
    project: Annotated[list[str] | None, typer.Option(
        "--project", help="Project name (repeatable; default: the repository's name).")] = None,
    allow_origin: Annotated[list[str] | None, typer.Option(
        "--allow-origin", help="Another origin allowed to call the API (repeatable).")] = None,
    identity_: Identity = None,
    json_: Json = False,
) -> None:
    """Serve the WebSocket bus, the HTTP API and the live page.  Example: bd serve --port 8001"""
    from beadsmail import server

    ws = workspace()

    def ready(url: str, projects: list[str]) -> None:
        info = {"url": url, "page": url + "/", "openapi": url + "/openapi.json",
                "bus": [url.replace("http", "ws", 1) + f"/ws/agent/messages/{p}?agent_id=ID"
                        for p in projects], "projects": projects}
        emit(info, json_, lambda d: f"serving {', '.join(d['projects'])} on {d['page']}\n"
             f"  API:  {d['openapi']}\n" + "".join(f"  bus:  {b}\n" for b in d["bus"])
             + "  stop with Ctrl-C")
        sys.stdout.flush()

    server.serve(ws, host=host, port=port, identity=identity(ws, identity_),
                 projects=project or None, allow_origins=allow_origin or [], ready=ready)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    group = next((g for g in app.registered_groups if g.name == "agent"), None)
    if group is not None and group.typer_instance is not None:
        group.typer_instance.add_typer(token_app, name="token")
    else:  # the agent commands are not loaded: keep the tokens reachable
        app.add_typer(token_app, name="token", hidden=True)
