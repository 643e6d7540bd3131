"""The hot mail commands without typer: ``check`` (after every tool call of an agent),
``inbox``, ``send`` and ``search``.

``cli.main`` hands ``bd mail ...`` here (``FAST``) before anything imports
typer (~30 ms, plus ~15 ms to build the commands). Arguments are parsed by hand
the way typer would; anything else (another subcommand, ``--help``, an unknown
option, a missing required one, a number that does not parse) returns False
and the full CLI takes over, reporting usage errors as usual. The typer
commands in ``cli.mail`` call the same ``run_*`` functions, so both paths
behave alike. ``check`` always exits 0: outside a repository it stays silent,
and any other problem is one line on stderr (or one JSON error object under
``--json``).
"""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    from typing import Any

ALIASES = {"-s": "--subject", "-m": "--body", "-p": "--priority", "-t": "--type", "-n": "--limit"}
NUMBERS = {"--priority": int, "--limit": int, "--wait": float}
SPECS: dict[str, tuple[set[str], set[str], bool]] = {  # flags, valued options, positionals
    "check": ({"--json", "--claude"}, {"--session", "--identity", "--hook"}, False),
    "inbox": ({"--json", "--unread"}, {"--from", "--priority", "--type", "--limit", "--wait",
                                       "--session", "--identity"}, False),
    "send": ({"--json", "--urgent", "--ephemeral", "--permanent", "--strict", "--no-strict"},
             {"--subject", "--body", "--priority", "--type", "--reply-to", "--context",
              "--metadata", "--action", "--identity"}, True),
    "search": ({"--json"}, {"--from", "--to", "--channel", "--thread", "--since", "--limit",
                            "--identity"}, True),
}
REQUIRED = {"send": ("--subject", "--body")}


def parse(command: str, args: list[str]) -> tuple[dict, list[str]] | None:
    """(options, positionals) of ``bd mail <command>``, or None to leave it to typer."""
    from beadsmail.cli import argv

    flags, valued, positional = SPECS[command]
    return argv.parse(args, flags=flags, options=valued, aliases=ALIASES, numbers=NUMBERS,
                      positionals=((1, 1) if command == "search" else (1, 10**6))
                      if positional else (0, 0),
                      required=REQUIRED.get(command, ()))


def fast(args: list[str]) -> bool:
    """``bd mail <args>``: run a hot command and return True, or False to leave it to typer."""
    command = args[0] if args else None
    parsed = parse(command, args[1:]) if command in SPECS else None
    if parsed is None:
        return False
    opts, rest = parsed
    if command == "check":
        run_check(opts.get("--json", False), "claude" if opts.get("--claude") else opts.get("--hook"),
                  opts.get("--session"), opts.get("--identity"))
    elif command == "inbox":
        run_inbox(opts.get("--json", False), opts.get("--identity"), opts.get("--session"),
                  opts.get("--wait"), sender=opts.get("--from"), priority=opts.get("--priority"),
                  type_=opts.get("--type"), unread=opts.get("--unread", False),
                  limit=opts.get("--limit"))
    elif command == "search":
        run_search(opts.get("--json", False), opts.get("--identity"), rest[0],
                   sender=opts.get("--from"), to=opts.get("--to"), channel=opts.get("--channel"),
                   thread=opts.get("--thread"), since=opts.get("--since"),
                   limit=opts.get("--limit", 20))
    else:
        if opts["--strict"] and opts["--no-strict"]:
            return False  # (typer takes the last one)
        run_send(opts.get("--json", False), opts.get("--identity"), rest, opts["--subject"],
                 opts["--body"], reply_to=opts.get("--reply-to"),
                 urgent=opts.get("--urgent", False), priority=opts.get("--priority"),
                 type_=opts.get("--type"), ephemeral=not opts.get("--permanent", False),
                 action=opts.get("--action", "none"), context=opts.get("--context"),
                 metadata=opts.get("--metadata"),
                 strict=True if opts["--strict"] else False if opts["--no-strict"] else None)
    return True


# -- the commands (typer's ``cli.mail`` calls these too) ------------------------------

def body_text(text: str) -> str:
    """A ``-m`` value; ``-`` reads stdin, which must be UTF-8."""
    if text != "-":
        return text
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        from beadsmail.errors import InvalidInput

        raise InvalidInput(f"the body on stdin is not UTF-8 (byte {exc.start}); "
                           "re-encode it as UTF-8") from None


def run_send(as_json: bool, identity: str | None, recipients: list[str], subject: str,
             body: str, *, context: str | None = None, metadata: str | None = None,
             **options: Any) -> None:
    from beadsmail import mail
    from beadsmail.cli import env, mailtext

    ws = env.workspace()
    result = mail.send(ws, env.identity(ws, identity), recipients, subject, body_text(body),
                       context=mail.parse_json(context, "--context", (dict, list, str)),
                       metadata=mail.parse_json(metadata, "--metadata", (dict,)), **options)
    from beadsmail.cli.output import emit_written

    emit_written(result, as_json, mailtext.sent)


def run_inbox(as_json: bool, identity: str | None, session: str | None, wait: float | None,
              **filters: Any) -> None:
    from beadsmail import mail
    from beadsmail.cli import env, mailtext
    from beadsmail.cli.output import emit

    ws = env.workspace()
    me = env.identity(ws, identity)
    if wait is None:
        result = mail.inbox(ws, me, session=env.session(session), **filters)
    else:
        from beadsmail import wake

        result = wake.wait_inbox(ws, me, wait, session=env.session(session), **filters)
    emit(result, as_json, lambda d: mailtext.inbox(ws, me, d, wait))


def run_search(as_json: bool, identity: str | None, query: str, **filters: Any) -> None:
    from beadsmail import search
    from beadsmail.cli import env, mailtext
    from beadsmail.cli.output import emit

    ws = env.workspace()
    emit(search.search(ws, env.identity(ws, identity), query, kinds=("mail",), **filters),
         as_json, mailtext.hits)


def run_check(as_json: bool, hook: str | None, session: str | None, identity: str | None) -> int:
    """Print the notice (or the JSON result, or the ``hook`` agent's hook reply); return 0
    whatever happened."""
    import sqlite3

    from beadsmail import wake
    from beadsmail.cli import env
    from beadsmail.cli.output import fail
    from beadsmail.errors import BeadsError, InvalidInput, NotARepository

    hook_session = _claude_session() if hook and not session else None
    try:
        reply = _hook_reply(hook) if hook else None
        ws = env.workspace()
        me = env.identity(ws, identity)
        result = wake.check(ws, me, env.session(session) or hook_session)
    except InvalidInput as exc:  # (an unknown --hook too): a usage mistake is loud
        fail(exc, as_json)
        return 0
    except NotARepository as exc:
        if as_json:
            fail(exc, True)
        return 0
    except (BeadsError, sqlite3.Error, OSError, UnicodeError) as exc:
        fail(exc, as_json)
        return 0
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    elif reply is not None:
        text = reply(result["notice"])
        if text is not None:
            print(text)
    elif result["notice"]:
        from beadsmail.cli.output import visible

        print(visible(result["notice"]))
    return 0


def _hook_reply(agent: str):
    """``notice -> what the agent's after-tool hook prints`` (None: print nothing)."""
    from beadsmail.integrations import hookreply as prime

    if agent not in prime.HOOK_EVENTS:
        from beadsmail.errors import InvalidInput

        raise InvalidInput(f"unknown --hook {agent!r}: use one of {', '.join(prime.HOOK_EVENTS)}")
    return lambda notice: prime.hook_reply(agent, "after", notice)


def _claude_session() -> str | None:
    """The ``session_id`` of the hook event a coding agent wrote on stdin, if any."""
    try:
        if sys.stdin is None or sys.stdin.isatty():
            return None
        event = json.loads(sys.stdin.read() or "null")
    except (OSError, ValueError):
        return None
    value = event.get("session_id") if isinstance(event, dict) else None
    return str(value)[:128] if value else None
