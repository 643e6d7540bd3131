"""``bd``: a thin typer layer. Each command resolves inputs, calls one API function, emits."""

from __future__ import annotations

import os
import sys

import typer

from beadsmail.cli import agents, mail, serve, store, sync, tasks
from beadsmail.cli.output import fail

app = typer.Typer(
    name="bd", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="beadsmail: git-native mail, tasks and coordination for coding agents.",
)
for module in (store, mail, tasks, agents, sync, serve):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    try:
        app(args=args, prog_name="bd", standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(130)
    except SystemExit:
        raise
    except BaseException as exc:  # the one error translator
        if os.environ.get("BEADS_DEBUG"):
            raise
        if type(exc).__name__ == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.ctx.get_help() if getattr(exc, "ctx", None) else "see 'bd --help'")
            sys.exit(0)
        sys.exit(fail(exc, as_json))
    sys.exit(0)
