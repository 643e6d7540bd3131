"""CLI command: ``bd sync [REMOTE] [--pull-only | --push-only]``.

``fast()`` runs it without typer when the arguments are plain (``cli.main``'s
``FAST``): agents sync often and a no-op sync should cost little more than
starting Python. Anything else (``--help``, both ``--pull-only`` and
``--push-only``, an unknown option) is left to typer, which reports usage errors.
(No ``from __future__ import annotations``: typer must see the option types.)
"""

import os

from beadsmail import sync as sync_mod
from beadsmail.cli import env
from beadsmail.cli.output import emit
from beadsmail.errors import BeadsError

FLAGS = {"--pull-only", "--push-only", "--json"}


def _render(d: dict) -> str:
    where = d["remote"] + (f" ({d['url']})" if d["url"] and d["url"] != d["remote"] else "")
    lines = [f"synced with {where}: {d['action']}",
             f"records received: {d['received']}, sent: {d['sent']}"
             + ("" if d["pulled"] else " (push only)")]
    if d.get("feeds_moved") or d.get("retired"):
        lines.append(f"feeds moved: {d['feeds_moved']}"
                     + (f", retired: {len(d['retired'])}" if d.get("retired") else ""))
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


def run(remote: str | None, pull_only: bool, push_only: bool, identity_flag: str | None,
        json_: bool) -> None:
    ws = env.workspace(adopt=True)  # a clone without a store may adopt its remote's
    try:
        me: tuple[str, ...] = (env.identity(ws, identity_flag),)
    except BeadsError:
        if identity_flag is not None:
            raise
        me = ()
    ssh = os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH")
    sync_mod.require_store(ws, _remote_arg(remote), not push_only, ssh)
    result = sync_mod.sync(ws, _remote_arg(remote), pull=not push_only, push=not pull_only,
                           identities=me, ssh_command=ssh)
    emit(result, json_, _render, warnings=result["warnings"])


def fast(args: list[str]) -> bool:
    """``bd sync <args>`` without typer; False to let typer parse them."""
    from beadsmail.cli import argv

    parsed = argv.parse(args, flags=FLAGS, options=("--identity",), positionals=(0, 1))
    if parsed is None:
        return False
    opts, rest = parsed
    if opts.get("--pull-only") and opts.get("--push-only"):
        return False
    run(rest[0] if rest else None, bool(opts.get("--pull-only")), bool(opts.get("--push-only")),
        opts.get("--identity"), bool(opts.get("--json")))
    return True


def register(app) -> None:
    from typing import Annotated

    import typer

    from beadsmail.cli.common import Identity, Json

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
        run(remote, pull_only, push_only, identity_, json_)
