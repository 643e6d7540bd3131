"""Options shared by commands, and the inputs the CLI resolves from the environment."""

from __future__ import annotations

from typing import Annotated

import typer

from beadsmail.cli.env import identity, identity_source, session, workspace  # noqa: F401 (re-exported)

Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
Identity = Annotated[str | None, typer.Option(
    "--identity", help="Act as this identity (else BEADS_IDENTITY, BTMSG_AGENT_ID, "
    "CLAUDE_SESSION_ID, config, user name).")]
