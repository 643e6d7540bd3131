"""Small builders shared by tests."""

from __future__ import annotations

from beadsmail.workspace import Workspace


def message_fields(sender: str = "alice", to: tuple[str, ...] = ("bob",), subject: str = "hello",
                   body: str = "hi", **extra) -> dict:
    fields = {"from": sender, "to": list(to), "subject": subject, "body": body, "priority": 2,
              "type": "request", "thread_id": "bd-0000000000000", "replies_to": None,
              "ephemeral": True, "metadata": {}, "action_requested": "none"}
    fields.update(extra)
    return fields


def write_message(ws: Workspace, sender: str = "alice", **kw) -> dict:
    written = ws.write(sender, [("message", message_fields(sender, **kw))],
                       f"mail: {sender} -> {','.join(kw.get('to', ('bob',)))}")
    return written.records[0]


def ok(result):
    """A successful command's parsed JSON (or its text when it printed no JSON)."""
    assert result.code == 0, (result.out, result.err)
    return result.json() if result.out.strip().startswith(("{", "[")) else result.out


def error(result, kind: str) -> dict:
    """The JSON error object of a refused command (exit 1), checked to be of ``kind``."""
    assert result.code == 1, (result.out, result.err)
    err = result.json()["error"]
    assert err["type"] == kind, err
    return err


def store_commits(repo) -> list[str]:
    from conftest import git

    return git(repo, "log", "--format=%s", "beadsmail").splitlines()


def approve_hooks(worktree) -> dict:
    """Approve the hooks and settings of ``worktree`` as they are now (``bd hooks trust``)."""
    from beadsmail import approvals

    ws = Workspace.open(worktree)
    return approvals.trust(ws.loc.worktree, ws.loc.state_dir)
