"""The console scripts of the tools beadsmail replaces: ``btmsg``, ``bttask``, ``mb-*``.

Each reads the caller from the variable its tool always used (``BTMSG_AGENT_ID``;
``CLAUDE_SESSION_ID`` for the message bus), parses its tool's command line with
the small parser the hot ``bd`` commands use (no typer: these run once per shell
command of an agent), calls the translation in ``beadsmail.compat`` and prints
the result: the tool's own text, or one JSON document under ``--json``. Errors
go through ``bd``'s one translator: one line on stderr, exit 1; a command line
the tool would not take prints its usage on stderr, exit 2.
"""

from __future__ import annotations

import os
import sys

from beadsmail.cli import argv as argv_mod
from beadsmail.cli import env
from beadsmail.cli.output import emit, fail, visible
from beadsmail.errors import InvalidInput

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Usage(Exception):
    """A command line the tool does not take (exit 2)."""


def dispatch(table: dict[str, tuple], args: list[str]) -> tuple[tuple, dict, list[str]]:
    """(table entry, options, positionals) for ``args``; Usage when nothing fits."""
    name = args[0] if args else ""
    if f"{name} {args[1] if len(args) > 1 else ''}" in table:
        name, args = f"{name} {args[1]}", args[1:]
    if name not in table:
        raise Usage(f"unknown command {name!r}" if name else "no command given")
    entry = table[name]
    _, flags, options, positionals, *_ = entry
    parsed = argv_mod.parse(args[1:], flags=flags, options=options, positionals=positionals)
    if parsed is None:
        raise Usage(f"cannot read the arguments of {name!r}")
    return entry, *parsed


def run(tool: str, usage: str, args: list[str], call: Callable[[list[str], bool], Any]) -> int:
    """Run one command of ``tool``: ``call(args, as_json)`` returns (data, text); print it."""
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    if not args or args[0] in ("help", "--help", "-h"):
        print(usage)
        return 0 if args else 2
    try:
        data, text = call(args, as_json)
        emit(data, as_json, lambda _: text)
        return 0
    except Usage as exc:
        print(f"{tool}: {visible(str(exc))}\n{usage}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the one error translator
        if os.environ.get("BEADS_DEBUG"):
            raise
        return fail(exc, as_json)


def _exit(code: int) -> None:
    """Flush and leave without the interpreter's teardown (as ``bd``'s fast commands do)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = 141
    os._exit(code)


def agent_from(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


# -- btmsg and bttask -----------------------------------------------------------

AGENT_VARIABLES = ("BTMSG_AGENT_ID", "BEADS_IDENTITY")


def _table_call(table: dict[str, tuple]) -> Callable[[list[str], bool], Any]:
    def call(args: list[str], as_json: bool) -> Any:
        (function, *_, needs_agent), opts, rest = dispatch(table, args)
        me = agent_from(AGENT_VARIABLES)
        if needs_agent and not me:
            raise InvalidInput("BTMSG_AGENT_ID is not set: export BTMSG_AGENT_ID=<your-agent-id>")
        opts["session"] = os.environ.get("BEADS_SESSION") or None
        return function(env.workspace(), me, opts, rest)
    return call


def btmsg_main(args: list[str]) -> int:
    from beadsmail.compat import btmsg

    return run("btmsg", btmsg.USAGE, args, _table_call(btmsg.COMMANDS))


def bttask_main(args: list[str]) -> int:
    from beadsmail.compat import bttask

    return run("bttask", bttask.USAGE, args, _table_call(bttask.COMMANDS))


def btmsg() -> None:
    _exit(btmsg_main(sys.argv[1:]))


def bttask() -> None:
    _exit(bttask_main(sys.argv[1:]))
