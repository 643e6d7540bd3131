"""Options shared by commands, and the inputs the CLI resolves from the environment."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

from beadsmail import records
from beadsmail.errors import InvalidInput
from beadsmail.workspace import Workspace

Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
Identity = Annotated[str | None, typer.Option(
    "--identity", help="Act as this identity (else BEADS_IDENTITY, config, user name).")]


def workspace() -> Workspace:
    return Workspace.open(os.environ.get("BEADS_DIR") or None)


def identity(ws: Workspace, flag: str | None = None) -> str:
    """Identity order: --identity, BEADS_IDENTITY, config ``identity``, the system user name."""
    for source, value in (("--identity", flag), ("BEADS_IDENTITY", os.environ.get("BEADS_IDENTITY")),
                          (".beads/config.yaml identity", ws.config.get("identity"))):
        if value:
            return records.check_identity(str(value), f"identity from {source}")
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        raise InvalidInput("no identity: pass --identity NAME or set BEADS_IDENTITY") from None
    try:
        return records.check_identity(name, "identity from the user name")
    except InvalidInput:
        raise InvalidInput(f"user name {name!r} is not a valid identity: pass --identity NAME "
                           "or set BEADS_IDENTITY") from None


def session(flag: str | None) -> str | None:
    return flag or os.environ.get("BEADS_SESSION") or None
