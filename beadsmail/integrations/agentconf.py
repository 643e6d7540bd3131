"""``bd setup <agent>``: what each coding agent needs in its own configuration files.

Per agent, where its files are (project scope: the worktree; user scope: the
home directory) and what goes in them, as read from each agent's documentation:

- Claude Code: the MCP server in ``.mcp.json`` (user: ``~/.claude.json``), key
  ``mcpServers``; hooks in ``.claude/settings.json`` (user:
  ``~/.claude/settings.json``): ``SessionStart`` runs ``bd prime --hook claude``,
  ``PostToolUse`` runs ``bd mail check --hook claude``.
- Codex CLI: ``[mcp_servers.beadsmail]`` in ``.codex/config.toml`` (user:
  ``$CODEX_HOME/config.toml``, by default ``~/.codex``); hooks in
  ``.codex/hooks.json`` beside it, in the same shape as Claude Code's.
- Gemini CLI: ``mcpServers`` and ``hooks`` (``SessionStart``, ``AfterTool``) in
  ``.gemini/settings.json`` (user: ``~/.gemini/settings.json``).
- Any other agent: a marked block in ``AGENTS.md`` telling it the commands.

Each returns the ``Edit`` of every file; applying, dry runs and removal are the
caller's (``setup``).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from beadsmail.errors import InvalidInput
from beadsmail.integrations import configfiles as cf
from beadsmail.integrations.configfiles import Edit

AGENTS = ("claude", "codex", "gemini", "agents-md")
SCOPES = ("project", "user")
SERVER = "beadsmail"
HOOK_TIMEOUT = {"claude": 30, "codex": 30, "gemini": 30000}  # seconds; Gemini: milliseconds


class Target:
    """Where and as whom: the worktree, the home directories, the bd command, the identity."""

    def __init__(self, root: Path, home: Path, codex_home: Path | None, bd: str,
                 identity: str | None, scope: str) -> None:
        if scope not in SCOPES:
            raise InvalidInput(f"unknown --scope {scope!r}: use project or user")
        self.root, self.home, self.scope = root, home, scope
        self.codex_home = codex_home or home / ".codex"
        self.bd = shlex.split(bd) or ["bd"]
        self.identity = identity

    def base(self, project: str, user: Path) -> Path:
        return self.root / project if self.scope == "project" else user

    def command(self, *words: str) -> str:
        extra = ["--identity", self.identity] if self.identity else []
        return shlex.join([*self.bd, *words, *extra])

    def server(self, with_type: bool = False) -> dict:
        entry: dict = {"type": "stdio"} if with_type else {}
        entry.update({"command": self.bd[0], "args": [*self.bd[1:], "mcp"]})
        if self.identity:
            entry["env"] = {"BEADS_IDENTITY": self.identity}
        return entry


def plan(agent: str, target: Target, remove: bool = False) -> list[Edit]:
    if agent not in AGENTS:
        raise InvalidInput(f"unknown agent {agent!r}: use one of {', '.join(AGENTS)}")
    return {"claude": _claude, "codex": _codex, "gemini": _gemini,
            "agents-md": _agents_md}[agent](target, remove)


def _json_edit(path: Path, change) -> Edit:
    raw = cf.read(path)
    data, style = cf.load_json(path, raw)
    change(data)
    after = cf.dump_json(data, style)
    if after is not None and raw is not None and cf.load_json(path, after)[0] == \
            cf.load_json(path, raw)[0]:
        after = raw  # nothing changed: keep the bytes as they were
    return Edit(path, raw, after)


def _hooks(agent: str, target: Target, start: str, after: str, named: bool):
    prime, check = target.command("prime", "--hook", agent), \
        target.command("mail", "check", "--hook", agent)

    def hook(command: str, name: str) -> dict:
        entry = {"type": "command", "command": command, "timeout": HOOK_TIMEOUT[agent]}
        return {"name": name, **entry} if named else entry

    groups = {start: {"hooks": [hook(prime, "beadsmail-prime")]},
              after: {"hooks": [hook(check, "beadsmail-mail-check")]}}
    commands = {start: prime, after: check}
    return groups, commands


def _apply_hooks(data: dict, groups: dict, commands: dict, remove: bool, path: Path) -> None:
    for event, group in groups.items():
        if remove:
            cf.drop_hook(data, event, commands[event])
        else:
            cf.put_hook(data, event, group, path)


def _servers(data: dict, entry: dict, remove: bool, path: Path) -> None:
    if remove:
        cf.drop_server(data, "mcpServers", SERVER, entry)
    else:
        cf.put_server(data, "mcpServers", SERVER, entry, path)


def _claude(target: Target, remove: bool) -> list[Edit]:
    servers = target.root / ".mcp.json" if target.scope == "project" \
        else target.home / ".claude.json"
    settings = target.base(".claude", target.home / ".claude") / "settings.json"
    groups, commands = _hooks("claude", target, "SessionStart", "PostToolUse", False)
    entry = target.server(with_type=True)
    return [_json_edit(servers, lambda d: _servers(d, entry, remove, servers)),
            _json_edit(settings, lambda d: _apply_hooks(d, groups, commands, remove, settings))]


def _codex(target: Target, remove: bool) -> list[Edit]:
    base = target.base(".codex", target.codex_home)
    config, hooks = base / "config.toml", base / "hooks.json"
    raw = cf.read(config)
    after = cf.toml_edit(config, raw, ("mcp_servers", SERVER), target.server(), remove)
    groups, commands = _hooks("codex", target, "SessionStart", "PostToolUse", False)
    return [Edit(config, raw, after),
            _json_edit(hooks, lambda d: _apply_hooks(d, groups, commands, remove, hooks))]


def _gemini(target: Target, remove: bool) -> list[Edit]:
    settings = target.base(".gemini", target.home / ".gemini") / "settings.json"
    groups, commands = _hooks("gemini", target, "SessionStart", "AfterTool", True)
    entry = target.server()

    def change(data: dict) -> None:
        _servers(data, entry, remove, settings)
        _apply_hooks(data, groups, commands, remove, settings)

    return [_json_edit(settings, change)]


def _agents_md(target: Target, remove: bool) -> list[Edit]:
    if target.scope != "project":
        raise InvalidInput("AGENTS.md belongs to a project: run bd setup agents-md without "
                           "--scope user")
    path = target.root / "AGENTS.md"
    raw = cf.read(path)
    return [Edit(path, raw, cf.block_edit(raw, agents_block(target), remove))]


def agents_block(target: Target) -> str:
    me = f" (as `{target.identity}`)" if target.identity else " (set BEADS_IDENTITY to your id)"
    bd = shlex.join(target.bd)
    return f"""## Messages and tasks between agents: beadsmail

Other agents work on this repository at the same time. Talk to them with `{bd}`{me}:

- Start of a session, and after your context was compacted: `{bd} prime`.
- After each step: `{bd} mail check` prints one line if new mail arrived.
- Mail: `{bd} mail inbox`, `{bd} mail read ID`, `{bd} mail reply ID -m TEXT`,
  `{bd} mail send AGENT -s SUBJECT -m TEXT`, `{bd} mail ack ID`.
- Waiting for an answer: `{bd} mail inbox --wait 300` (returns as soon as mail comes).
- Tasks: `{bd} task list --assigned ME`, `{bd} task status ID in_progress --version N` (N is the
  version you read; a stale one is refused: list again).
- Add `--json` to any command for data. An MCP server with the same tools: `{bd} mcp`."""
