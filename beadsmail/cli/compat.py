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


def run(tool: str, usage: str, args: list[str], call: Callable[[list[str], bool], Any],
        any_args: bool = False) -> int:
    """Run one command of ``tool``: ``call(args, as_json)`` returns (data, text); print it.
    ``any_args``: the tool is one command, which may take no arguments at all."""
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    if (not args and not any_args) or (args and args[0] in ("help", "--help", "-h")):
        print(usage)
        return 0 if args else 2
    env.ACTING.clear()
    code = _call(tool, usage, call, args, as_json)
    if code != 130:  # whatever the command did, a sign of life of its caller
        env.note_alive(code == 0)
    return code


def _call(tool: str, usage: str, call: Callable[[list[str], bool], Any], args: list[str],
          as_json: bool) -> int:
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
        ws = env.workspace()
        return function(ws, env.acting(ws, me) if me else me, opts, rest)
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


# -- the message-bus skill ------------------------------------------------------

MB_USAGE = {
    "mb-init": "usage: mb-init [--json]",
    "mb-send": "usage: mb-send <to> <type> '<json>' [--urgent] [--priority=N] [--json]\n"
               "       mb-send --broadcast <type> '<json>' [--json]",
    "mb-recv": "usage: mb-recv [--peek] [--json] [--instance=X] [--wait=SECONDS]",
    "mb-register": "usage: mb-register <id> [<tmux-session>] [<description>] "
                   "[--initiative=X] [--worktree=PATH] [--role=ROLE] [--json]",
    "mb-unregister": "usage: mb-unregister [<id>] [--json]",
    "mb-list": "usage: mb-list [--all] [--json]",
    "mb-status": "usage: mb-status [--json]",
}
MB_ARGS: dict[str, tuple[set, set, tuple[int, int]]] = {
    "mb-init": (set(), set(), (0, 0)),
    "mb-send": ({"--urgent", "--broadcast"}, {"--priority"}, (2, 3)),
    "mb-recv": ({"--peek"}, {"--instance", "--wait"}, (0, 0)),
    "mb-register": (set(), {"--initiative", "--worktree", "--role"}, (1, 3)),
    "mb-unregister": (set(), set(), (0, 1)),
    "mb-list": ({"--all"}, set(), (0, 0)),
    "mb-status": (set(), set(), (0, 0)),
}


def _caller(ws) -> str:
    """CLAUDE_SESSION_ID, else bd's identity order."""
    session = os.environ.get("CLAUDE_SESSION_ID")
    return env.acting(ws, session) if session else env.identity(ws)


def _number(opts: dict, name: str, kind: type) -> Any:
    try:
        return kind(opts[name]) if opts.get(name) is not None else None
    except ValueError:
        raise Usage(f"{name} takes a number, not {opts[name]!r}") from None


def _mb_call(tool: str, args: list[str]) -> tuple[Any, str]:
    from beadsmail.compat import mb

    flags, options, positionals = MB_ARGS[tool]
    parsed = argv_mod.parse(args, flags=flags, options=options, positionals=positionals)
    if parsed is None:
        raise Usage("cannot read these arguments")
    opts, rest = parsed
    if tool == "mb-init":
        return _mb_init()
    ws = env.workspace()
    if tool == "mb-send":
        if opts["--broadcast"] != (len(rest) == 2):
            raise Usage("give <to> <type> '<json>', or --broadcast <type> '<json>'")
        to = None if opts["--broadcast"] else rest.pop(0)
        sent = mb.send(ws, _caller(ws), to, rest[0], rest[1], urgent=opts["--urgent"],
                       priority=_number(opts, "--priority", int))
        return sent, f"Sent {sent['type']} to {to or 'all (broadcast)'}: {sent['id']}"
    if tool == "mb-recv":
        found = mb.recv(ws, opts.get("--instance") or _caller(ws), peek=opts["--peek"],
                        wait=_number(opts, "--wait", float))
        return found, mb.render_messages(found)
    if tool == "mb-register":
        row = mb.register(ws, os.environ.get("CLAUDE_SESSION_ID"), *rest,
                          initiative=opts.get("--initiative"), worktree=opts.get("--worktree"),
                          role=opts.get("--role"))
        return row, f"Registered {row['instance_id']}"
    if tool == "mb-unregister":
        done = mb.unregister(ws, os.environ.get("CLAUDE_SESSION_ID"),
                             rest[0] if rest else _caller(ws))
        return done, f"Unregistered {done['instance_id']}"
    if tool == "mb-list":
        rows = mb.list_instances(ws, opts["--all"])
        return rows, mb.render_instances(rows)
    found = mb.status(ws)
    return found, mb.render_status(found)


def _mb_init() -> tuple[dict, str]:
    """Create the store if needed and install the Claude Code files in this worktree."""
    from pathlib import Path

    from beadsmail import maintenance
    from beadsmail.compat import claude

    made = maintenance.init(None)
    ws = env.workspace()
    script = Path(sys.argv[0])
    bin_dir = str(script.resolve().parent) if script.name.startswith("mb-") else None
    written = claude.install(ws.loc.worktree, bin_dir)
    out = {"store": made["ref"], "created_store": made["created_store"], "written": written}
    lines = [f"{'created' if made['created_store'] else 'using'} store {made['ref']}",
             *(f"wrote {p}" for p in written)]
    return out, "\n".join(lines)


def mb_main(tool: str, args: list[str]) -> int:
    return run(tool, MB_USAGE[tool], args, lambda a, _: _mb_call(tool, a), any_args=True)


def _mb(tool: str) -> None:
    _exit(mb_main(tool, sys.argv[1:]))


def mb_init() -> None:
    _mb("mb-init")


def mb_send() -> None:
    _mb("mb-send")


def mb_recv() -> None:
    _mb("mb-recv")


def mb_register() -> None:
    _mb("mb-register")


def mb_unregister() -> None:
    _mb("mb-unregister")


def mb_list() -> None:
    _mb("mb-list")


def mb_status() -> None:
    _mb("mb-status")
