"""CLI command: ``bd sync [REMOTE] [--pull-only | --push-only]``."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from beadsmail import sync as sync_mod
from beadsmail.cli.common import Identity, Json, identity, workspace
from beadsmail.cli.output import emit
from beadsmail.errors import BeadsError


def _render(d: dict) -> str:
    where = d["remote"] + (f" ({d['url']})" if d["url"] and d["url"] != d["remote"] else "")
    lines = [f"synced with {where}: {d['action']}",
             f"records received: {d['received']}, sent: {d['sent']}"
             + ("" if d["pulled"] else " (push only)")]
    for m in d["new_messages"]:
        lines.append(f"new message {m['id']} from {m['from']} to {', '.join(m['to'])}: "
                     f"{m['subject']}")
    if d["task_conflicts"]:
        lines.append(f"task conflicts resolved: {len(d['task_conflicts'])}")
    for c in d["task_conflicts"]:
        lines.append(f"  task {c['task']}: {c['op']} by {c['actor']} lost (expected version "
                     f"{c['expected_version']}, found {c['actual_version']} by {c['moved_by']})")
    return "\n".join(lines)


def _remote_arg(token: str | None) -> str | None:
    """A path given on the command line is relative to the current directory."""
    if token and "://" not in token and os.path.exists(token) and not os.path.isabs(token):
        return os.path.abspath(token)
    return token


def register(app: typer.Typer) -> None:
    @app.command()
    def sync(
        remote: Annotated[str | None, typer.Argument(
            help="Remote name, URL or path (default: sync.remote in .beads/config.yaml, "
                 "else origin).")] = None,
        pull_only: Annotated[bool, typer.Option("--pull-only", help="Fetch and merge; do not push.")] = False,
        push_only: Annotated[bool, typer.Option("--push-only", help="Push; do not merge into this clone.")] = False,
        identity_: Identity = None,
        json_: Json = False,
    ) -> None:
        """Exchange the store with a git remote: fetch, merge, fold, push.  Example: bd sync origin --json"""
        if pull_only and push_only:
            raise typer.BadParameter("--pull-only and --push-only exclude each other; give at most one")
        ws = workspace()
        try:
            me: tuple[str, ...] = (identity(ws, identity_),)
        except BeadsError:
            if identity_:
                raise
            me = ()
        ssh = os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH")
        result = sync_mod.sync(ws, _remote_arg(remote), pull=not push_only, push=not pull_only,
                               identities=me, ssh_command=ssh)
        emit(result, json_, _render, warnings=result["warnings"])
