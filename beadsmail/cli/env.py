"""What the CLI takes from the environment: workspace, identity, session.

Kept free of typer so that the fast path (``cli.fast``) can use it too.
"""

from __future__ import annotations

import os

from beadsmail import records
from beadsmail.errors import InvalidInput
from beadsmail.workspace import Workspace


def workspace(adopt: bool = False) -> Workspace:
    """The workspace of the current directory (or ``BEADS_DIR``); a repository without a
    store is refused: no command but ``bd init`` (and ``bd sync`` adopting a remote's
    store, ``adopt``) sets anything up."""
    ws = Workspace.open(os.environ.get("BEADS_DIR") or None)
    if not adopt and not ws.heads():  # a store ref or a remote-tracking copy of one
        from beadsmail.errors import NoStore

        raise NoStore(ws.loc.worktree or ws.loc.gitdir)
    from beadsmail.cli.output import warn

    for notice in ws.notices:  # settings held back until approved, said once
        warn(notice)
    return ws


# The environment variables that name the caller, in order: beadsmail's own, then those
# of the tools it replaces (btmsg and bttask agents, message-bus orchestrators).
IDENTITY_VARIABLES = ("BEADS_IDENTITY", "BTMSG_AGENT_ID", "CLAUDE_SESSION_ID")


# The caller this command runs as, once it is known: (workspace, identity). Whatever the
# command does, it is a sign of life of that identity (``note_alive``).
ACTING: list[tuple[Workspace, str]] = []


def acting(ws: Workspace, me: str) -> str:
    """This command runs as ``me`` in ``ws``: a sign of life, noted locally at once (so the
    command's own output shows it); ``note_alive`` commits it when due. Returns ``me``."""
    if ACTING != [(ws, me)]:
        ACTING[:] = [(ws, me)]
        _best_effort(me, lambda signs: signs.touch(ws, me))
    return me


def note_alive(succeeded: bool) -> None:
    """After the command: if it succeeded, commit the caller's sign of life as a heartbeat
    when one is due (see ``beadsmail.liveness``)."""
    if ACTING and succeeded:
        ws, me = ACTING[0]
        _best_effort(me, lambda signs: signs.note_alive(ws, me))
    ACTING.clear()


def _best_effort(me: str, call) -> None:
    """Liveness never fails a command: a problem noting it is a warning."""
    import sqlite3

    from beadsmail import liveness
    from beadsmail.errors import BeadsError

    try:
        call(liveness)
    except (BeadsError, sqlite3.Error, OSError) as exc:
        from beadsmail.cli.output import warn

        warn(f"could not note {me} as alive: {exc}")


def identity_source(ws: Workspace, flag: str | None = None) -> tuple[str, str]:
    """(identity, where it came from): --identity, BEADS_IDENTITY, BTMSG_AGENT_ID,
    CLAUDE_SESSION_ID, config, the user name. The caller is remembered (``acting``)."""
    me, source = _identity_source(ws, flag)
    acting(ws, me)
    return me, source


def _identity_source(ws: Workspace, flag: str | None) -> tuple[str, str]:
    sources = [("--identity", flag), *((name, os.environ.get(name)) for name in IDENTITY_VARIABLES),
               ("config", ws.config.get("identity"))]
    for source, value in sources:
        if value or (source == "--identity" and value is not None):  # an empty flag is an error
            where = ".beads/config.yaml identity" if source == "config" else source
            return records.check_identity(str(value), f"identity from {where}"), source
    import getpass  # only for this fallback: it costs start-up time

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        raise InvalidInput("no identity: pass --identity NAME or set BEADS_IDENTITY") from None
    try:
        return records.check_identity(name, "identity from the user name"), "user"
    except InvalidInput:
        raise InvalidInput(f"user name {name!r} is not a valid identity: pass --identity NAME "
                           "or set BEADS_IDENTITY") from None


def identity(ws: Workspace, flag: str | None = None) -> str:
    """Identity order: --identity, BEADS_IDENTITY, BTMSG_AGENT_ID, CLAUDE_SESSION_ID, config
    ``identity``, the system user name."""
    return identity_source(ws, flag)[0]


def session(flag: str | None) -> str | None:
    return flag or os.environ.get("BEADS_SESSION") or None
