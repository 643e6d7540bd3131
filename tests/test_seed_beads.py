"""beads messaging (seeds 003): its shell lines and its example hook, run as written.

The lines run through ``/bin/sh`` with the installed ``bd`` in a repository whose
agents sit in linked worktrees. The example hook is the document's text; it posts
to https://example.com, which a test must not reach, so a ``curl`` that records its
arguments is put first on ``PATH`` (the hook itself is unchanged). Ids in the
document (``bd-a1b2`` ...) are examples: the test uses the ids ``bd`` returned.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import approve_hooks
from shell import js, ok, sh

HOOK = """#!/bin/sh
# .beads/hooks/on_message
ISSUE_ID="$1"
EVENT="$2"

# Parse assignee from JSON stdin
ASSIGNEE=$(cat | jq -r '.assignee')

# Notify recipient (example: send to external system)
curl -X POST "https://example.com/notify" \\
  -d "to=$ASSIGNEE&message=$ISSUE_ID"
"""
CURL = '#!/bin/sh\necho "$@" >> "$CURL_LOG"\n'


def test_identity_commands_json_and_threads(worktrees: list[Path], bd) -> None:
    main, wt1, wt2 = worktrees
    assert bd(main, "init").code == 0
    (wt1 / ".beads").mkdir(exist_ok=True)
    (wt1 / ".beads" / "config.json").write_text('{\n  "identity": "worker-1"\n}\n')
    sent = js(sh(main, 'export BEADS_IDENTITY="manager"\n'
                       'bd mail send worker-1 -s "Task complete" -m "Finished bd-xyz" --json'))
    assert (sent["from"], sent["to"], sent["priority"]) == ("manager", ["worker-1"], 2)
    assert (sent["title"], sent["description"], sent["assignee"], sent["sender"]) == (
        "Task complete", "Finished bd-xyz", "worker-1", "manager")
    urgent = js(sh(wt1, 'bd mail send manager -s "Blocked!" -m "Need credentials for deploy" '
                        "--urgent --json"))
    assert (urgent["from"], urgent["priority"]) == ("worker-1", 0)  # from .beads/config.json
    handoff = js(sh(wt2, 'bd mail send worker-2 -s "Handoff" -m "Your turn on bd-abc" '
                         "--identity refinery --json"))
    assert handoff["from"] == "refinery"
    assert "Task complete" in ok(sh(wt1, "bd mail inbox"))
    inbox = js(sh(wt1, "bd mail inbox --json"))
    assert [(m["id"], m["status"], m["ephemeral"]) for m in inbox] == [(sent["id"], "open", True)]
    assert "Finished bd-xyz" in ok(sh(wt1, f"bd mail read {sent['id']}"))
    read = js(sh(wt1, f"bd mail read {sent['id']} --json"))
    assert read["status"] == "open"  # reading does not close it
    reply = js(sh(wt1, f'bd mail reply {sent["id"]} -m "On it! Should be done by EOD." --json'))
    assert (reply["replies_to"], reply["to"], reply["subject"]) == (
        sent["id"], ["manager"], "Re: Task complete")
    ok(sh(wt1, f"bd mail ack {sent['id']}"))
    assert js(sh(wt1, "bd mail inbox --json")) == []
    thread = js(sh(main, f"bd show {reply['id']} --thread --json"))
    assert [m["id"] for m in thread] == [sent["id"], reply["id"]]
    preview = js(sh(main, "bd cleanup --ephemeral --dry-run --json"))
    assert sent["id"] in json.dumps(preview)
    ok(sh(main, "bd cleanup --ephemeral --force"))


def test_the_example_hook_runs_verbatim(repo: Path, bd, tmp_path: Path) -> None:
    assert bd(repo, "init").code == 0
    hook = repo / ".beads" / "hooks" / "on_message"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(HOOK)
    ok(sh(repo, "chmod +x .beads/hooks/on_message"))  # the document's line
    approve_hooks(repo)
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "curl").write_text(CURL)
    (stub / "curl").chmod(0o755)
    log = tmp_path / "curl.log"
    sent = js(sh(repo, f'PATH="{stub}:$PATH" bd mail send worker-1 -s "Hi" -m "Test" --json',
                 CURL_LOG=str(log)))
    assert log.read_text().split() == ["-X", "POST", "https://example.com/notify", "-d",
                                       f"to=worker-1&message={sent['id']}"]
