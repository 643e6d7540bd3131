"""Text views show control characters escaped, whatever field they sit in; --json keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_message

from beadsmail.cli.output import visible
from beadsmail.workspace import Workspace

# ESC sequences (clear screen, set title, OSC 8), a bell, a carriage return, DEL, C1 (CSI)
NASTY = "\x1b[2J\x1b]0;owned\x07\r\x7f\x9b31m\x85"
RAW = ("\x1b", "\x07", "\r", "\x7f", "\x9b", "\x85")


def test_visible_escapes_controls_but_newline_and_tab() -> None:
    assert visible("plain\ttext\nok é") == "plain\ttext\nok é"
    assert visible("a\x1bb\x00c\x7fd\x9fe") == "a\\x1bb\\x00c\\x7fd\\x9fe"


@pytest.fixture
def hostile(repo: Path, bd) -> tuple[Path, dict]:
    """A store holding, as a clone or a hand edit could, records with controls in each field."""
    assert bd(repo, "init").code == 0
    ws = Workspace.open(repo)
    root = write_message(ws, to=("bob",), subject="subject" + NASTY, body="body" + NASTY,
                         metadata={"k": NASTY})
    task = ws.write("alice", [("task", {
        "title": "title" + NASTY, "description": "desc" + NASTY, "status": "todo",
        "priority": "high", "assigned_to": "bob", "sort_order": 0})], "task").records[0]
    ws.close()
    return repo, {"message": root, "task": task}


def _clean(result) -> None:
    text = result.out + result.err
    assert not [c for c in RAW if c in text], repr(text)


@pytest.mark.parametrize("args", [
    ("mail", "inbox", "--identity", "bob"),
    ("mail", "read", "{message}", "--identity", "bob", "--peek"),
    ("show", "{message}"),
    ("show", "--thread", "{message}"),
    ("task", "show", "{task}"),
    ("task", "list"),
    ("task", "board"),
    ("status",),
    ("audit",),
    ("show", "bd-\x1b[2Jx\x07y"),  # an error that repeats what it was given
])
def test_every_text_view_escapes_and_json_keeps_the_text(hostile, bd, args) -> None:
    repo, made = hostile
    args = tuple(a.format(message=made["message"]["id"], task=made["task"]["id"]) for a in args)
    result = bd(repo, *args)
    _clean(result)
    shown = bd(repo, *args, "--json")
    if shown.code == 0 and args[0] in ("mail", "show") and "inbox" not in args:
        data = shown.json()
        record = data[0] if isinstance(data, list) else data.get("message", data)
        assert record["subject"] == "subject" + NASTY  # the exact text


def test_sync_report_and_warnings_escape(hostile, bd, tmp_path: Path) -> None:
    repo, made = hostile
    from conftest import git

    bare = tmp_path / "r.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    result = bd(repo, "sync", str(bare))
    assert result.code == 0, result.err
    _clean(result)
