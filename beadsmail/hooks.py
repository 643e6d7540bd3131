"""Hooks: executables in ``.beads/hooks/`` of the worktree, run after a commit.

``.beads/hooks/<hook> <record id> <event type>`` with the record as JSON on
stdin, in the worktree root, with ``BEADS_HOOK``, ``BEADS_EVENT`` and
``BEADS_RECORD_ID`` in the environment. ``on_message`` keeps beads' interface:
argument 2 is ``message`` and stdin carries beads' field names too
(``compat.beads``); the finer event (send, reply, arrive) is ``BEADS_EVENT``. Arguments are passed as a list, never
through a shell. A hook is bounded by ``hooks.timeout`` seconds; a failure or a
timeout becomes a warning for stderr, and what was stored stays stored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

HOOKS = ("on_message", "on_create", "on_update", "on_close")


def run(worktree: Path | None, hook: str, record: dict, event: str, timeout: float) -> list[str]:
    """Run one hook if it exists; return warnings (empty when it succeeded or is absent)."""
    if worktree is None or hook not in HOOKS:
        return []
    path = worktree / ".beads" / "hooks" / hook
    if not path.is_file():
        return []
    if not os.access(path, os.X_OK):
        return [f"warning: hook {path} is not executable (chmod +x it); skipped"]
    import signal
    import subprocess  # (only when a hook exists: most writes have none)

    env = {**os.environ, "BEADS_HOOK": hook, "BEADS_EVENT": event, "BEADS_RECORD_ID": record["id"]}
    if hook == "on_message":  # beads' interface: argument 2 is "message", stdin its fields
        from beadsmail.compat import beads

        record, event = beads.hook_payload(record), "message"
    payload = json.dumps(record, ensure_ascii=False, sort_keys=True).encode()
    try:
        proc = subprocess.Popen([str(path), record["id"], event], stdin=subprocess.PIPE,
                                cwd=worktree, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return [f"warning: hook {hook} could not run: {exc.strerror or exc}; {record['id']} is stored"]
    try:
        _, stderr = proc.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the hook and whatever it started
        proc.wait()
        return [f"warning: hook {hook} timed out after {timeout:g}s and was killed; "
                f"{record['id']} is stored"]
    if proc.returncode != 0:
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return [f"warning: hook {hook} exited {proc.returncode}{': ' + tail[0] if tail[0] else ''}; "
                f"{record['id']} is stored"]
    return []
