"""One small argv parser for the hot commands that run without typer.

Agents run some commands after every tool call (``bd mail check``,
``bd agent heartbeat``, ``bd mail inbox``, ``bd task list``, ``bd sync``), and
importing typer costs more than the command itself. Those commands describe
their options here; ``parse`` accepts only what it fully understands and
returns None for anything else (``--help``, an unknown or repeated option, a
value that does not convert, a missing required option), so typer then parses
the same arguments and reports usage errors as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    from typing import Any


def parse(args: list[str], *, flags: Iterable[str] = (), options: Iterable[str] = (),
          repeated: Iterable[str] = (), aliases: dict[str, str] | None = None,
          numbers: dict[str, Callable[[str], Any]] | None = None,
          positionals: tuple[int, int] = (0, 0),
          required: Iterable[str] = ()) -> tuple[dict[str, Any], list[str]] | None:
    """``(options, positionals)`` or None to leave the arguments to typer.

    ``flags`` become True when present (else False); ``options`` take one value
    each; ``repeated`` options collect a list; ``positionals`` is (min, max).
    """
    flags, options, repeated = set(flags), set(options), set(repeated)
    opts: dict[str, Any] = {f: False for f in flags} | {r: [] for r in repeated}
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            continue
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        name = (aliases or {}).get(name, name)
        if name in flags and not eq:
            opts[name] = True
            continue
        if name not in options and name not in repeated:
            return None
        if not eq:
            value = next(it, None)
            if value is None or (value.startswith("-") and value != "-"):
                return None
        if name in repeated:
            opts[name].append(value)
        elif name in opts:
            return None  # given twice
        else:
            opts[name] = value
    if not positionals[0] <= len(rest) <= positionals[1]:
        return None
    for name, convert in (numbers or {}).items():
        if name in opts:
            try:
                opts[name] = convert(opts[name])
            except ValueError:
                return None
    if any(name not in opts for name in required):
        return None
    return opts, rest
