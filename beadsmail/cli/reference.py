"""Write the CLI reference (``docs/cli.md``) from the commands themselves.

``python -m beadsmail.cli.reference > docs/cli.md`` (``make docs``); a test
checks the file is current, so the reference never drifts from ``--help``.
"""

from __future__ import annotations

import typer.main

from beadsmail.cli import build_app

INTRO = """# CLI reference

Generated from the commands' own help by `make docs`; do not edit by hand.

Every command takes `--json` and then prints exactly one JSON document on stdout
(streams such as `bd mail watch` print one JSON object per line). Data goes to
stdout, everything else to stderr. Exit codes: 0 ok, 1 a domain error, 2 a usage
error; an error is one line on stderr, or under `--json` one JSON error object on
stdout, `{"error": {"type": ..., "message": ...}}`, and nothing on stderr. A
command's free text is `-m` (`--body`, `--message`, `--content`, `--description`,
`--note`, `--reason`). Ids are accepted as any unique prefix (at least 4 characters after
`bd-`). The identity a command acts as comes from `--identity`, then
`BEADS_IDENTITY`, then `BTMSG_AGENT_ID` (btmsg and bttask agents), then
`CLAUDE_SESSION_ID` (message-bus orchestrators, see `compat.md`), then
`identity` in `.beads/config.yaml` (or `.beads/config.json`),
then the system user name.

See also: `storage.md`, `mail.md`, `hooks.md`, `tasks.md`, `agents.md`, `sync.md`, `server.md`.
"""


def _walk(cmd, path: list[str]):
    yield path, cmd
    for name in sorted(getattr(cmd, "commands", {})):
        yield from _walk(cmd.commands[name], [*path, name])


def render() -> str:
    root = typer.main.get_command(build_app())
    parts = [INTRO]
    for path, cmd in _walk(root, ["bd"]):
        if len(path) == 1:
            continue
        ctx = cmd.context_class(cmd, info_name=" ".join(path), terminal_width=100, max_content_width=100)
        heading = "#" * min(len(path), 4)
        parts.append(f"{heading} `{' '.join(path)}`\n")
        parts.append("```\n" + cmd.get_help(ctx).strip() + "\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
