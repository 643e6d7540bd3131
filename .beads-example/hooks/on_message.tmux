#!/usr/bin/env python3
"""on_message hook: nudge an agent's tmux session when urgent mail (priority 0) arrives.

Install: copy to .beads/hooks/on_message and chmod +x it.

The session nudged is $BEADS_TMUX_TARGET when set (any tmux target, like
"agents:worker-1.0"), else every direct recipient that has a tmux session of the
same name. The nudge types one line into the pane and presses Enter, which is
how an agent waiting at its prompt is woken. Set BEADS_TMUX_ENTER=0 to type
without pressing Enter. Non-urgent mail and missing sessions are ignored.

The line typed holds no text another agent chose: not the subject, not the
sender's name, only the message id, and that only when it has the shape of an
id (else a fixed line). Whatever is typed into a pane may be run by a shell or
read as an instruction by an agent, so the agent reads the message itself with
'bd mail read', which shows it as text.
"""

import json
import os
import re
import shutil
import subprocess
import sys


def tmux(*args: str) -> int:
    return subprocess.run(["tmux", *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=5).returncode


ID = re.compile(r"[a-z0-9]{1,8}-[a-z0-9]{10,40}")
SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")


def nudge(record: dict) -> str:
    """The line to type: fixed words and a checked id, nothing else from the record."""
    mid = record.get("id")
    if isinstance(mid, str) and ID.fullmatch(mid):
        return f"[bd] URGENT mail {mid} (read it with: bd mail read {mid})"
    return "[bd] URGENT mail (read it with: bd mail inbox)"


def main() -> int:
    record = json.load(sys.stdin)
    if record.get("kind") != "message" or record.get("priority") != 0 or not shutil.which("tmux"):
        return 0
    explicit = os.environ.get("BEADS_TMUX_TARGET")
    targets = [explicit] if explicit else [
        t for t in record.get("to", []) if isinstance(t, str) and SESSION.fullmatch(t)
        and tmux("has-session", "-t", "=" + t) == 0]
    text = nudge(record)
    for target in targets:
        pane = target if explicit else f"={target}:"  # exactly that session, its active pane
        tmux("send-keys", "-t", pane, "-l", text)
        if os.environ.get("BEADS_TMUX_ENTER", "1") != "0":
            tmux("send-keys", "-t", pane, "Enter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
