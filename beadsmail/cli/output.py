"""The one output function and the one error translator of the CLI.

Data goes to stdout (exactly one JSON document under ``--json``), everything
else to stderr. Exit codes: 0 ok, 1 a domain error, 2 a usage error.

Text for a terminal shows text, never control sequences: whatever a record's
fields hold (they may come from any clone), every text view, warning and error
passes through ``visible()`` here, which writes C0 controls other than newline
and tab, ESC, DEL and C1 controls as ``\\xNN``. ``--json`` keeps the exact text
(JSON escapes what it must). A renderer that builds terminal styling itself
escapes its fields with ``visible()`` and returns ``Escaped`` text.
"""

from __future__ import annotations

import errno
import json
import re
import sqlite3
import sys
from collections.abc import Callable

from beadsmail.errors import BeadsError

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    from typing import Any


CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with its control characters (but newline and tab) shown as ``\\xNN``."""
    if not CONTROLS.search(text):
        return text
    return CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class Escaped(str):
    """Text whose fields a renderer escaped itself (it may hold its own styling)."""


def emit(data: Any, as_json: bool, render: Callable[[Any], str] | None = None,
         warnings: list[str] | None = None) -> None:
    for warning in warnings or ():
        print(visible(str(warning)), file=sys.stderr)
    if as_json:
        # A value that already holds its JSON text (a large listing read from the
        # index) offers ``__json__()``: it is printed as it is, not encoded again.
        dump = getattr(data, "__json__", None)
        print(dump() if dump else json.dumps(data, ensure_ascii=False, indent=None, default=str))
        return
    text = render(data) if render else _plain(data)
    if text:
        print(text if isinstance(text, Escaped) else visible(text))


def emit_written(result: dict, as_json: bool, render: Callable[[Any], str] | None = None) -> None:
    """Emit a write's result: its ``warnings`` (dead letters, hooks) go to stderr and,
    under ``--json``, stay in the document too (beside a send's ``dead_letters``), so a
    caller that reads only stdout sees them."""
    warnings = result["warnings"] if as_json else result.pop("warnings", [])
    emit(result, as_json, render, warnings)


def emit_line(data: Any) -> None:
    """One JSON object on its own line (streams such as ``bd mail watch``)."""
    print(json.dumps(data, ensure_ascii=False, default=str), flush=True)


def warn(message: str) -> None:
    print(visible(message), file=sys.stderr)


def _plain(data: Any, indent: str = "") -> str:
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{indent}{key}:")
                lines.append(_plain(value, indent + "  "))
            else:
                lines.append(f"{indent}{key}: {value if value not in (None, [], {}) else '-'}")
        return "\n".join(lines)
    if isinstance(data, list):
        return "\n".join(_plain(item, indent) if isinstance(item, dict | list)
                         else f"{indent}- {item}" for item in data)
    return f"{indent}{data}"


# What to do about the disk and permission faults a user's machine has.
OS_ADVICE = {
    errno.ENOSPC: " free some space and try again (nothing was half-written)",
    errno.EDQUOT: " free some space and try again (nothing was half-written)",
    errno.EROFS: " bd writes its records and index under the repository's .git directory, "
                 "so run it where that is writable",
    errno.EACCES: " bd writes its records and index under the repository's .git directory, "
                  "so run it as a user who may write there",
}


def fail(exc: BaseException, as_json: bool) -> int:
    """Print one line (or one JSON error object) for ``exc``; return the exit code."""
    code, kind, message, details = 1, "error", str(exc), {}
    if isinstance(exc, BeadsError):
        code, kind, message, details = exc.exit_code, exc.code, exc.message, exc.details
    elif hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
        code, kind, message = exc.exit_code, "usage", exc.format_message()
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
    elif isinstance(exc, sqlite3.Error):
        message = f"index error: {exc}; try 'bd index rebuild'"
        if "full" in str(exc):
            message = f"index error: {exc};{OS_ADVICE[errno.ENOSPC]}"
        elif "readonly" in str(exc) or "read-only" in str(exc):
            message = f"index error: {exc};{OS_ADVICE[errno.EROFS]}"
        elif "locked" in str(exc) or "busy" in str(exc):
            message = (f"index error: {exc}: another bd process kept the index busy for "
                       "minutes (a full rebuild of a very large store?); try again when it is done")
    elif isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        message = f"cannot access{where}: {exc.strerror or exc}"
        message += f";{OS_ADVICE[exc.errno]}" if exc.errno in OS_ADVICE else ""
    elif isinstance(exc, UnicodeError):
        message = f"input is not valid UTF-8 text: {exc}"
    else:
        message = f"internal error: {exc.__class__.__name__}: {exc} (set BEADS_DEBUG=1 for a traceback)"
    message = " ".join(str(message).split())
    if as_json:
        print(json.dumps({"error": {"type": kind, "message": message, **details}},
                         ensure_ascii=False, default=str))
    else:
        print(f"error: {visible(message)}", file=sys.stderr)
    return code
