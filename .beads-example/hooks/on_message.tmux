#!/usr/bin/env python3
"""on_message hook: nudge an agent's tmux session when urgent mail (priority 0) arrives.

Install: copy to .beads/hooks/on_message and chmod +x it.

The session nudged is $BEADS_TMUX_TARGET when set (any tmux target, like
"agents:worker-1.0"), else every direct recipient that has a tmux session of the
same name. The nudge types one line into the pane and presses Enter, which is
how an agent waiting at its prompt is woken. Set BEADS_TMUX_ENTER=0 to type
without pressing Enter. Non-urgent mail and missing sessions are ignored.
"""

import json
import os
import shutil
import subprocess
import sys


def tmux(*args: str) -> int:
    return subprocess.run(["tmux", *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=5).returncode


def main() -> int:
    record = json.load(sys.stdin)
    if record.get("kind") != "message" or record.get("priority") != 0 or not shutil.which("tmux"):
        return 0
    explicit = os.environ.get("BEADS_TMUX_TARGET")
    targets = [explicit] if explicit else [
        t for t in record.get("to", []) if t[:1] not in "#@*" and tmux("has-session", "-t", "=" + t) == 0]
    text = (f"[bd] URGENT mail {record['id']} from {record['from']}: {record['subject']} "
            f"(read it with: bd mail read {record['id']})")
    for target in targets:
        pane = target if explicit else f"={target}:"  # exactly that session, its active pane
        tmux("send-keys", "-t", pane, "-l", text)
        if os.environ.get("BEADS_TMUX_ENTER", "1") != "0":
            tmux("send-keys", "-t", pane, "Enter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
