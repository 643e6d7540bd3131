"""What a coding agent's hook prints: its JSON carrying a text as added context.

Kept apart from everything else so the after-tool hook (``bd mail check --hook``,
run after every tool call) imports nothing more than it needs.
"""

from __future__ import annotations

import json

# Which hook event each agent names, and whether its hooks must print JSON even when silent.
HOOK_EVENTS = {"claude": ("SessionStart", "PostToolUse", False),
               "codex": ("SessionStart", "PostToolUse", False),
               "gemini": ("SessionStart", "AfterTool", True)}


def hook_reply(agent: str, moment: str, text: str) -> str | None:
    """What a hook prints: the agent's JSON carrying ``text`` as added context, or None
    (print nothing) when there is nothing to say and the agent accepts silence."""
    start, after, json_always = HOOK_EVENTS[agent]
    if not text:
        return "{}" if json_always else None
    event = start if moment == "start" else after
    return json.dumps({"hookSpecificOutput": {"hookEventName": event,
                                              "additionalContext": text}}, ensure_ascii=False)
