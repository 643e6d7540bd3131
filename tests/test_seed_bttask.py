"""The bttask reference (seeds 001): its command lines, run as written, on beadsmail.

The document's CLI block runs through ``/bin/sh`` with the installed ``bttask``
script in a repository with worktrees. Its lines name the task ``T-42``: task
ids here are random (``bd-`` + 13 characters), so the test runs the block with
the id ``bttask create`` returned put in place of ``T-42``; everything else is
as printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shell import js, ok, sh

LIST = "bttask list"
CREATE = """bttask create --title "Fix auth bug" --priority high \\
  --description "Token refresh fails after 24h\""""
STATUS = "bttask status --id T-42 --status in_progress --version 1"
COMMENT = 'bttask comment --id T-42 --content "Root cause identified: expired refresh token"'
DELETE = "bttask delete --id T-42"

TASK_COLUMNS = {"id", "title", "description", "status", "priority", "assigned_to", "created_by",
                "group_id", "parent_task_id", "sort_order", "version", "created_at",
                "updated_at"}


@pytest.fixture
def board(worktrees: list[Path], bd) -> list[Path]:
    main, wt1, wt2 = worktrees
    assert bd(main, "init").code == 0
    ok(sh(main, "btmsg register --id mgr-1 --name Manager --role manager --group my-team "
                "--tier 1"))
    ok(sh(wt1, "btmsg register --id rev-1 --name Reviewer --role reviewer --group my-team"))
    ok(sh(wt2, "btmsg register --id dev-1 --name Dev --role project --group my-team --tier 2"))
    return worktrees


def test_the_cli_block(board: list[Path], bd) -> None:
    main, wt1, wt2 = board
    created = js(sh(main, CREATE + " --json", BTMSG_AGENT_ID="mgr-1"))
    assert set(created) == TASK_COLUMNS
    assert (created["title"], created["priority"], created["description"], created["status"],
            created["version"], created["created_by"], created["group_id"]) == (
        "Fix auth bug", "high", "Token refresh fails after 24h", "backlog", 1, "mgr-1", "my-team")
    tid = created["id"]
    listed = js(sh(wt2, LIST + " --json", BTMSG_AGENT_ID="dev-1"))
    assert [t["id"] for t in listed] == [tid] and set(listed[0]) == TASK_COLUMNS
    assert "Fix auth bug" in ok(sh(wt2, LIST, BTMSG_AGENT_ID="dev-1"))
    moved = js(sh(wt1, STATUS.replace("T-42", tid) + " --json", BTMSG_AGENT_ID="rev-1"))
    assert (moved["status"], moved["version"]) == ("in_progress", 2)
    commented = js(sh(wt2, COMMENT.replace("T-42", tid) + " --json", BTMSG_AGENT_ID="dev-1"))
    assert set(commented) == {"id", "task_id", "agent_id", "content", "created_at"}
    assert (commented["task_id"], commented["agent_id"]) == (tid, "dev-1")
    shown = bd(main, "task", "show", tid, "--json").json()  # the same board in bd
    assert shown["task"]["status"] == "in_progress"
    assert [c["content"] for c in shown["comments"]] == [
        "Root cause identified: expired refresh token"]
    ok(sh(main, DELETE.replace("T-42", tid), BTMSG_AGENT_ID="mgr-1"))
    assert js(sh(main, LIST + " --json", BTMSG_AGENT_ID="mgr-1")) == []


def test_stale_version_is_a_conflict_naming_the_current_version(board: list[Path]) -> None:
    main, wt1, _ = board
    tid = js(sh(main, CREATE + " --json", BTMSG_AGENT_ID="mgr-1"))["id"]
    ok(sh(wt1, STATUS.replace("T-42", tid), BTMSG_AGENT_ID="rev-1"))
    again = sh(main, STATUS.replace("T-42", tid).replace("in_progress", "review") + " --json",
               BTMSG_AGENT_ID="mgr-1")
    assert again.code == 1
    import json

    err = json.loads(again.out)["error"]
    assert err["type"] == "conflict" and err["current_version"] == 2
    plain = sh(main, STATUS.replace("T-42", tid).replace("in_progress", "review"),
               BTMSG_AGENT_ID="mgr-1")
    assert plain.code == 1 and "version 2" in plain.err


def test_role_permissions(board: list[Path]) -> None:
    """Create: manager; status: manager and reviewer; delete: manager; comments: all."""
    main, wt1, wt2 = board
    for where, agent in ((wt1, "rev-1"), (wt2, "dev-1")):
        refused = sh(where, CREATE, BTMSG_AGENT_ID=agent)
        assert refused.code == 1 and "task.create" in refused.err
    tid = js(sh(main, CREATE + " --json", BTMSG_AGENT_ID="mgr-1"))["id"]
    refused = sh(wt2, STATUS.replace("T-42", tid), BTMSG_AGENT_ID="dev-1")
    assert refused.code == 1 and "task.status" in refused.err
    refused = sh(wt1, DELETE.replace("T-42", tid), BTMSG_AGENT_ID="rev-1")
    assert refused.code == 1 and "task.delete" in refused.err
    ok(sh(wt1, COMMENT.replace("T-42", tid), BTMSG_AGENT_ID="rev-1"))


def test_review_queue_post_and_count(board: list[Path], bd) -> None:
    main, wt1, _ = board
    tid = js(sh(main, CREATE + " --json", BTMSG_AGENT_ID="mgr-1"))["id"]
    ok(sh(main, f"bttask status --id {tid} --status review --version 1", BTMSG_AGENT_ID="mgr-1"))
    assert js(sh(wt1, "bttask review-count --json", BTMSG_AGENT_ID="rev-1")) == 1
    posts = bd(wt1, "channel", "read", "review-queue", "--json").json()["messages"]
    assert len(posts) == 1 and tid in posts[0]["body"]


def test_the_published_scripts_positional_forms(board: list[Path]) -> None:
    main, wt1, wt2 = board
    made = js(sh(main, 'bttask add Refactor the token cache --desc "keep it small" '
                       "--priority critical --assign dev-1 --json", BTMSG_AGENT_ID="mgr-1"))
    assert (made["title"], made["priority"], made["assigned_to"]) == (
        "Refactor the token cache", "high", "dev-1")
    tid = made["id"]
    moved = js(sh(wt1, f"bttask status {tid} progress --json", BTMSG_AGENT_ID="rev-1"))
    assert moved["status"] == "in_progress"
    ok(sh(wt2, f"bttask comment {tid} on it now", BTMSG_AGENT_ID="dev-1"))
    shown = js(sh(wt2, f"bttask show {tid} --json", BTMSG_AGENT_ID="dev-1"))
    assert [c["content"] for c in shown["comments"]] == ["on it now"]
    assert "in_progress" in ok(sh(main, "bttask board", BTMSG_AGENT_ID="mgr-1"))
    ok(sh(main, f"bttask delete {tid}", BTMSG_AGENT_ID="mgr-1"))


def test_the_assignee_moves_their_task_and_the_strict_key_restores_the_document(
        board: list[Path]) -> None:
    """By default the assignee may move their own task; with ``tasks.strict_roles: true``
    the reference's matrix holds as written: others are read-only."""
    main, _, wt2 = board
    tid = js(sh(main, CREATE + " --assign dev-1 --json", BTMSG_AGENT_ID="mgr-1"))["id"]
    moved = js(sh(wt2, STATUS.replace("T-42", tid) + " --json", BTMSG_AGENT_ID="dev-1"))
    assert (moved["status"], moved["assigned_to"]) == ("in_progress", "dev-1")
    (wt2 / ".beads").mkdir(exist_ok=True)
    (wt2 / ".beads" / "config.yaml").write_text("tasks:\n  strict_roles: true\n")
    refused = sh(wt2, f"bttask status --id {tid} --status review --version 2",
                 BTMSG_AGENT_ID="dev-1")
    assert refused.code == 1 and "task.status" in refused.err
    assert "manager, reviewer" in refused.err
