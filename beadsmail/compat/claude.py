"""The files ``mb-init`` gives a Claude Code project, so that mail wakes the agent.

The message-bus skill received mail three ways: a background monitor sub-agent,
a PostToolUse hook and a ``/check-messages`` slash command. Here all three rest
on ``bd``'s waiting and checking instead of polling a database:

* ``.claude/skills/message-bus/monitor-prompt-template.md``: the monitor's
  prompt (``{instance_id}`` is filled in by the skill's own ``.format`` call); it
  runs ``mb-recv --wait=600``, which blocks until mail arrives (``bd mail inbox
  --wait``), marks it read and prints it, and returns that as its answer;
* ``.claude/settings.json``: a PostToolUse hook running ``bd mail check
  --claude`` (the caller from ``CLAUDE_SESSION_ID``), which puts a one-line
  notice of new mail into the agent's context once per session; existing
  settings are kept and the hook is added once;
* ``.claude/commands/check-messages.md``: ``/check-messages`` runs ``mb-recv``;
* ``.claude/scripts/message-bus/mb-*``: the paths the skill's documents use,
  each a two-line script running the installed command of the same name.
"""

from __future__ import annotations

import json
from pathlib import Path

from beadsmail.errors import InvalidInput

SCRIPTS = ("mb-init", "mb-send", "mb-recv", "mb-register", "mb-unregister", "mb-list",
           "mb-status")
CHECK = "bd mail check --claude"
MONITOR = """\
You are the message monitor of the Claude Code instance {instance_id}.

Run this command and wait for it to finish (it blocks until a message arrives,
for at most ten minutes):

    mb-recv --instance={instance_id} --wait=600

- If it printed messages, they are now marked read: reply with exactly what it
  printed, and stop. Do nothing else with them.
- If it printed "No pending messages.", run it once more, then stop with the
  answer "No messages (monitor timed out; respawn me)".
"""
COMMAND = """\
---
description: Receive pending message-bus messages (marks them read)
---
Run `mb-recv` and read its output. For each message, do what its
"Action requested" asks (acknowledge, respond with `mb-send <sender> response
'<json>'`, or execute), then carry on with your work.
"""


def files(bin_dir: str | None) -> dict[str, str]:
    """Relative path -> content of every file but settings.json."""
    out = {".claude/skills/message-bus/monitor-prompt-template.md": MONITOR,
           ".claude/commands/check-messages.md": COMMAND}
    for name in SCRIPTS:
        command = f"{bin_dir}/{name}" if bin_dir else name
        out[f".claude/scripts/message-bus/{name}"] = f'#!/bin/sh\nexec "{command}" "$@"\n'
    return out


def _settings(path: Path) -> tuple[dict, bool]:
    """settings.json with the PostToolUse check added; whether it changed."""
    data: dict = {}
    if path.exists():
        try:
            data = json.loads(path.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(f"{path} is not valid JSON; fix it and run mb-init again "
                               "(nothing was written)") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path} is not a JSON object; nothing was written")
    post = data.setdefault("hooks", {}).setdefault("PostToolUse", [])
    commands = [h.get("command") for entry in post if isinstance(entry, dict)
                for h in entry.get("hooks", []) if isinstance(h, dict)]
    if CHECK in commands:
        return data, False
    post.append({"matcher": "*", "hooks": [{"type": "command", "command": CHECK}]})
    return data, True


def install(worktree: Path, bin_dir: str | None) -> list[str]:
    """Write the files (scripts executable); return the paths written."""
    settings_path = worktree / ".claude" / "settings.json"
    settings, changed = _settings(settings_path)  # (checked before anything is written)
    written = []
    for rel, text in files(bin_dir).items():
        path = worktree / rel
        if path.exists() and path.read_text("utf-8", "replace") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
        if "/scripts/" in rel:
            path.chmod(0o755)
        written.append(rel)
    if changed:
        settings_path.parent.mkdir(parents=True, exist_ok=True)
        settings_path.write_text(json.dumps(settings, indent=2) + "\n", "utf-8")
        written.append(".claude/settings.json")
    return written
