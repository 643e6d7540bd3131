"""Tasks: the kanban board, optimistic locking, comments, review queue, permissions, hooks."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import git, run_bd_proc
from helpers import approve_hooks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beadsmail import records as rec
from beadsmail.index import Index
from beadsmail.index import tasks as idx
from beadsmail.workspace import Workspace

STATUSES = ("backlog", "todo", "in_progress", "review", "done")


@pytest.fixture
def store(repo: Path, bd) -> Path:
    assert bd(repo, "init").code == 0
    return repo


def ok(bd, path: Path, *args: str, who: str = "alice"):
    result = bd(path, *args, "--json", env={"BEADS_IDENTITY": who})
    assert result.code == 0, (args, result.err, result.out)
    return result.json()


def fails(bd, path: Path, *args: str, who: str = "alice", code: int = 1) -> dict | str:
    """Run a command that must be refused; check nothing was written; return the error."""
    before = head(path)
    result = bd(path, *args, env={"BEADS_IDENTITY": who})
    assert result.code == code, (args, result.code, result.out, result.err)
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    assert head(path) == before, f"{args} wrote something"
    if code == 1:
        as_json = bd(path, *args, "--json", env={"BEADS_IDENTITY": who})
        assert as_json.code == 1
        return as_json.json()["error"]
    return result.err


def head(path: Path) -> str:
    return git(path, "rev-parse", "refs/heads/beadsmail").strip()


def create(bd, path: Path, title: str = "Fix login", *args: str, who: str = "alice") -> dict:
    return ok(bd, path, "task", "create", "--title", title, *args, who=who)["task"]


def records_of(path: Path, kind: str) -> list[dict]:
    ws = Workspace.open(path)
    try:
        ws.refresh()
        return [r for r in ws.index.all_records() if r["kind"] == kind]
    finally:
        ws.close()


def register(path: Path, agent: str, role: str, group: str | None = None) -> None:
    ws = Workspace.open(path)
    try:
        ws.write(agent, [("agent", {"op": "register", "agent": agent, "role": role,
                                    "group": group})], f"agent: register {agent}")
    finally:
        ws.close()


# -- create, list, show --------------------------------------------------------

def test_create_defaults_and_text_output(store: Path, bd) -> None:
    task = create(bd, store)
    assert (task["status"], task["version"], task["priority"]) == ("backlog", 1, "medium")
    assert task["created_by"] == "alice" and task["assigned_to"] is None
    assert rec.ID_RE.match(task["id"])
    text = bd(store, "task", "create", "--title", "Second", env={"BEADS_IDENTITY": "alice"})
    assert text.code == 0 and "Second" in text.out and "version 1" in text.out


def test_create_with_every_option(store: Path, bd) -> None:
    parent = create(bd, store, "Epic")
    data = ok(bd, store, "task", "create", "--title", "Child", "--description", "the details",
              "--priority", "high", "--assign", "bob", "--parent", parent["id"][:8],
              "--status", "todo", "--group", "backend")
    task = data["task"]
    assert task["parent"] == parent["id"] and task["assigned_to"] == "bob"
    assert (task["status"], task["priority"], task["group"]) == ("todo", "high", "backend")
    assert task["description"] == "the details" and data["posted"] == []


def test_create_bad_input_is_one_line_and_writes_nothing(store: Path, bd) -> None:
    assert fails(bd, store, "task", "create", "--title", "  ")["type"] == "invalid_input"
    err = fails(bd, store, "task", "create", "--title", "x", "--status", "doing")
    assert "unknown status 'doing'" in err["message"] and "backlog" in err["message"]
    assert "priority" in fails(bd, store, "task", "create", "--title", "x", "--priority", "urgent")["message"]
    err = fails(bd, store, "task", "create", "--title", "x", "--parent", "bd-zzzzzzzz")
    assert err["type"] == "not_found" and "parent task" in err["message"]
    assert "--title" in fails(bd, store, "task", "create", code=2)
    assert records_of(store, "task") == []


def test_list_order_filters_and_done(store: Path, bd) -> None:
    a = create(bd, store, "A", "--assign", "bob", "--group", "web")
    b = create(bd, store, "B", "--status", "todo")
    c = create(bd, store, "C", "--status", "done")
    d = create(bd, store, "D")
    ok(bd, store, "task", "order", d["id"], "5")
    ids = [t["id"] for t in ok(bd, store, "task", "list")]
    assert ids == [b["id"], a["id"], d["id"]]  # sort order first, then newest first
    assert [t["id"] for t in ok(bd, store, "task", "list", "--all")] == [c["id"], b["id"], a["id"], d["id"]]
    assert [t["id"] for t in ok(bd, store, "task", "list", "--status", "done")] == [c["id"]]
    both = ok(bd, store, "task", "list", "--status", "todo", "--status=backlog")
    assert [t["id"] for t in both] == [b["id"], a["id"], d["id"]]
    assert [t["id"] for t in ok(bd, store, "task", "list", "--assigned", "bob")] == [a["id"]]
    assert [t["id"] for t in ok(bd, store, "task", "list", "--group", "web")] == [a["id"]]
    assert len(ok(bd, store, "task", "list", "--limit", "2")) == 2
    text = bd(store, "task", "list").out.splitlines()
    assert text[0].split()[:3] == ["ID", "STATUS", "PRIORITY"] and b["id"] in text[1]
    assert fails(bd, store, "task", "list", "--status", "later")["type"] == "invalid_input"
    assert fails(bd, store, "task", "list", "--limit", "0")["type"] == "invalid_input"
    assert "not a valid int" in fails(bd, store, "task", "list", "--limit", "x", code=2)


def test_list_fast_path_matches_typer_path(store: Path, bd) -> None:
    from beadsmail.cli import tasks as cli_tasks

    for i in range(3):
        create(bd, store, f"T{i}", "--assign", "bob")
    assert cli_tasks._list_options(["--json", "--status=todo", "--limit", "3"]) == {
        "--json": True, "--all": False, "--mine": False, "--status": ["todo"],
        "--assigned": None, "--group": None, "--limit": 3, "--identity": None}
    for args in (["--help"], ["--assigned"], ["--limit", "-1"], ["--bogus"], ["x"],
                 ["--mine", "--assigned", "bob"]):
        assert cli_tasks._list_options(args) is None, args
    fast = ok(bd, store, "task", "list", "--assigned", "bob")
    assert bd(store, "task", "list", "--help").code == 0
    # "+9" is not a spelling the fast path takes: typer parses the same query instead
    slow = bd(store, "task", "list", "--assigned", "bob", "--json", "--limit", "+9")
    assert slow.code == 0 and slow.json() == fast and len(fast) == 3


def test_show_subtasks_comments_history(store: Path, bd) -> None:
    epic = create(bd, store, "Epic", "--description", "all of it")
    child = create(bd, store, "Child", "--parent", epic["id"])
    ok(bd, store, "task", "comment", epic["id"], "--content", "first", who="bob")
    ok(bd, store, "task", "comment", epic["id"], "--content", "second")
    ok(bd, store, "task", "status", epic["id"], "todo", "--version", "1")
    ok(bd, store, "task", "assign", epic["id"], "carol")
    shown = ok(bd, store, "task", "show", epic["id"][:7])
    assert shown["task"]["version"] == 3 and shown["task"]["assigned_to"] == "carol"
    assert [t["id"] for t in shown["subtasks"]] == [child["id"]]
    assert [(c["actor"], c["content"]) for c in shown["comments"]] == [("bob", "first"),
                                                                         ("alice", "second")]
    assert [(h["version"], h["op"], h["from_status"], h["to_status"]) for h in shown["history"]] == [
        (1, "create", None, "backlog"), (2, "status", "backlog", "todo"),
        (3, "assign", "todo", "todo")]
    assert shown["history"][2]["changes"] == {"assigned_to": "carol"}
    assert shown["conflicts"] == []
    text = bd(store, "task", "show", epic["id"]).out
    assert "backlog -> todo" in text and "first" in text and child["id"] in text
    assert ok(bd, store, "task", "comments", epic["id"]) == shown["comments"]
    assert "second" in bd(store, "task", "comments", epic["id"]).out
    assert fails(bd, store, "task", "show", "bd-zzzzzzzz")["type"] == "not_found"
    assert fails(bd, store, "task", "comment", epic["id"], "--content", " ")["type"] == "invalid_input"


# -- moves and optimistic locking ------------------------------------------------

def test_status_moves_with_version_and_conflicts(store: Path, bd) -> None:
    task = create(bd, store)
    moved = ok(bd, store, "task", "status", task["id"], "in_progress", "--version", "1")
    assert (moved["task"]["status"], moved["task"]["version"]) == ("in_progress", 2)
    err = fails(bd, store, "task", "status", task["id"], "review", "--version", "1", who="bob")
    assert err["type"] == "conflict" and err["current_version"] == 2
    assert err["updated_by"] == "alice" and "version 2" in err["message"]
    assert "already in in_progress" in fails(
        bd, store, "task", "status", task["id"], "in_progress", "--version", "2")["message"]
    assert "not a valid int" in fails(bd, store, "task", "status", task["id"], "done",
                                      "--version", "two", code=2)
    assert "--version" in fails(bd, store, "task", "status", task["id"], "done", code=2)
    assert "unknown status 'finished'" in fails(
        bd, store, "task", "status", task["id"], "finished", "--version", "2")["message"]
    assert fails(bd, store, "task", "status", task["id"], "done", "--version", "0")["type"] == "invalid_input"
    done = ok(bd, store, "task", "status", task["id"], "done", "--version", "2")["task"]
    assert done["version"] == 3
    back = ok(bd, store, "task", "status", task["id"], "backlog", "--version", "3")["task"]
    assert back["status"] == "backlog"  # any move between the five statuses is allowed


def test_assign_edit_order_delete(store: Path, bd) -> None:
    a = create(bd, store, "A")
    b = create(bd, store, "B", "--parent", a["id"])
    assert ok(bd, store, "task", "assign", a["id"], "bob")["task"]["assigned_to"] == "bob"
    assert ok(bd, store, "task", "assign", a["id"], "--unassign", "--version", "2")["task"]["assigned_to"] is None
    assert fails(bd, store, "task", "assign", a["id"], "--version", "1", "bob")["type"] == "conflict"
    assert "--unassign" in fails(bd, store, "task", "assign", a["id"], code=2)
    edited = ok(bd, store, "task", "edit", a["id"], "--title", "A2", "--priority", "high",
                "--description", "more", "--group", "ops")["task"]
    assert (edited["title"], edited["priority"], edited["group"], edited["version"]) == (
        "A2", "high", "ops", 4)
    assert ok(bd, store, "task", "edit", a["id"], "--no-group")["task"]["group"] is None
    assert "nothing to change" in fails(bd, store, "task", "edit", a["id"])["message"]
    assert fails(bd, store, "task", "edit", a["id"], "--title", "")["type"] == "invalid_input"
    assert "cycle" in fails(bd, store, "task", "edit", a["id"], "--parent", b["id"])["message"]
    assert "cycle" in fails(bd, store, "task", "edit", a["id"], "--parent", a["id"])["message"]
    assert fails(bd, store, "task", "edit", b["id"], "--parent", "bd-zzzzzzzz")["type"] == "not_found"
    assert ok(bd, store, "task", "edit", b["id"], "--no-parent")["task"]["parent"] is None
    negative = bd(store, "task", "order", "--json", b["id"], "--", "-3", env={"BEADS_IDENTITY": "alice"})
    assert negative.code == 0 and negative.json()["task"]["sort_order"] == -3
    assert "not a valid int" in fails(bd, store, "task", "order", b["id"], "first", code=2)
    gone = ok(bd, store, "task", "delete", a["id"])
    assert gone["task"]["deleted"] is True
    assert [t["id"] for t in ok(bd, store, "task", "list", "--all")] == [b["id"]]
    assert ok(bd, store, "task", "show", a["id"])["task"]["deleted"] is True
    assert "deleted" in fails(bd, store, "task", "status", a["id"], "todo", "--version", "7")["message"]
    assert "deleted" in fails(bd, store, "task", "create", "--title", "x", "--parent", a["id"])["message"]


def test_concurrent_movers_exactly_one_wins(store: Path) -> None:
    env = {"BEADS_IDENTITY": "alice"}
    task = json.loads(run_bd_proc(store, "task", "create", "--title", "race", "--json", env=env).out)
    task_id = task["task"]["id"]
    targets = ["todo", "in_progress", "review", "done", "todo", "in_progress"]
    with ThreadPoolExecutor(len(targets)) as pool:
        results = list(pool.map(lambda s: run_bd_proc(
            store, "task", "status", task_id, s, "--version", "1", "--json", env=env), targets))
    winners = [r for r in results if r.code == 0]
    losers = [r for r in results if r.code != 0]
    assert len(winners) == 1, [(r.code, r.err) for r in results]
    assert all(r.code == 1 and r.json()["error"]["type"] == "conflict" for r in losers)
    shown = json.loads(run_bd_proc(store, "task", "show", task_id, "--json").out)
    assert shown["task"]["version"] == 2 and len(records_of(store, "task_event")) == 1


# -- review queue ----------------------------------------------------------------

def test_review_posts_and_channels_created_once(store: Path, bd) -> None:
    task = create(bd, store, "Needs eyes")
    moved = ok(bd, store, "task", "status", task["id"], "review", "--version", "1")
    assert [p["channel"] for p in moved["posted"]] == ["#review-queue"]
    second = create(bd, store, "Also", "--status", "review")
    assert ok(bd, store, "task", "review-count") == {"review": 2, "group": None}
    assert bd(store, "task", "review-count").out.strip() == "2"
    decided = ok(bd, store, "task", "status", task["id"], "done", "--version", "2")
    assert [p["channel"] for p in decided["posted"]] == ["#review-log"]
    ok(bd, store, "task", "status", second["id"], "todo", "--version", "1")
    channels = records_of(store, "channel")
    assert sorted(c["name"] for c in channels) == ["review-log", "review-queue"]
    messages = records_of(store, "message")
    assert [(m["to"], m["type"], m["metadata"]["task"]) for m in messages] == [
        (["#review-queue"], "notification", task["id"]),
        (["#review-queue"], "notification", second["id"]),
        (["#review-log"], "notification", task["id"]),
        (["#review-log"], "notification", second["id"])]
    assert messages[2]["metadata"]["to_status"] == "done"
    queue = ok(bd, store, "channel", "read", "review-queue")  # seen by the channel commands
    assert [m["id"] for m in queue["messages"]] == [messages[0]["id"], messages[1]["id"]]
    assert ok(bd, store, "task", "review-count")["review"] == 0
    # the move and its post are one commit
    log = git(store, "log", "--format=%s", "beadsmail").splitlines()
    assert sum("status" in line for line in log) == 3


def test_review_count_and_list_by_group(store: Path, bd) -> None:
    register(store, "alice", "manager", "backend")
    mine = create(bd, store, "Backend thing", "--status", "review")
    assert mine["group"] == "backend"  # the creator's registered group
    create(bd, store, "Web thing", "--status", "review", "--group", "web")
    assert ok(bd, store, "task", "review-count", "--group", "backend")["review"] == 1
    assert ok(bd, store, "task", "review-count")["review"] == 2
    assert [t["id"] for t in ok(bd, store, "task", "list", "--group", "backend")] == [mine["id"]]


def test_board_columns_and_counts(store: Path, bd) -> None:
    for status in ("backlog", "backlog", "todo", "review", "done"):
        create(bd, store, f"in {status}", "--status", status)
    board = ok(bd, store, "task", "board", "--limit", "1")
    assert [c["status"] for c in board["columns"]] == list(STATUSES)
    assert [c["count"] for c in board["columns"]] == [2, 1, 0, 1, 1]
    assert [len(c["tasks"]) for c in board["columns"]] == [1, 1, 0, 1, 1]
    text = bd(store, "task", "board").out
    for header in ("backlog (2)", "todo (1)", "in_progress (0)", "review (1)", "done (1)"):
        assert header in text
    assert fails(bd, store, "task", "board", "--limit", "0")["type"] == "invalid_input"


# -- permissions and hooks ---------------------------------------------------------

def test_role_permissions(store: Path, bd) -> None:
    task = create(bd, store, "Before anyone registered", who="nobody")  # everyone is manager
    register(store, "boss", "manager")
    register(store, "rev", "reviewer")
    register(store, "dev", "worker")
    err = fails(bd, store, "task", "create", "--title", "x", who="dev")
    assert err["type"] == "permission_denied" and "'task.create'" in err["message"]
    assert "'task.create'" in fails(bd, store, "task", "create", "--title", "x", who="stranger")["message"]
    assert "'task.status'" in fails(bd, store, "task", "status", task["id"], "todo",
                                    "--version", "1", who="dev")["message"]
    assert "'task.assign'" in fails(bd, store, "task", "assign", task["id"], "dev", who="rev")["message"]
    assert "'task.delete'" in fails(bd, store, "task", "delete", task["id"], who="rev")["message"]
    ok(bd, store, "task", "status", task["id"], "review", "--version", "1", who="rev")
    ok(bd, store, "task", "comment", task["id"], "--content", "worker may comment", who="dev")
    ok(bd, store, "task", "comment", task["id"], "--content", "strangers too", who="stranger")
    assert ok(bd, store, "task", "show", task["id"], who="dev")["task"]["version"] == 2
    ok(bd, store, "task", "assign", task["id"], "dev", who="boss")
    ok(bd, store, "task", "delete", task["id"], who="boss")


def _hook(store: Path, name: str, body: str) -> None:
    path = store / ".beads" / "hooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    approve_hooks(store)


def test_hooks_fire_for_tasks(store: Path, bd) -> None:
    log = store / "hooks.log"
    for name in ("on_create", "on_update", "on_close"):
        _hook(store, name, f'echo "{name} $1 $2 $BEADS_TASK_ID $BEADS_RECORD_ID" >> {log}')
    task = create(bd, store)
    ok(bd, store, "task", "status", task["id"], "done", "--version", "1")
    ok(bd, store, "task", "comment", task["id"], "--content", "c")
    ok(bd, store, "task", "delete", task["id"])
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [(h, e) for h, _, e, *_ in lines] == [("on_create", "create"), ("on_update", "status"),
                                                 ("on_close", "done"), ("on_update", "comment"),
                                                 ("on_close", "delete")]
    assert {line[1] for line in lines} == {task["id"]}  # $1: the task, whatever the record
    assert lines[0][3:] == [task["id"]]  # the task record itself: no BEADS_TASK_ID
    events = [line[4] for line in lines[1:]]  # a move, a comment, a delete: their own ids
    assert all(line[3] == task["id"] for line in lines[1:]) and task["id"] not in events
    assert len(set(events)) == 3 and all(e.startswith("bd-") for e in events)
    _hook(store, "on_update", "echo broken >&2; exit 3")
    result = bd(store, "task", "assign", task["id"], "bob", env={"BEADS_IDENTITY": "alice"})
    assert result.code == 1  # deleted: refused before any hook
    other = create(bd, store, "Other")
    result = bd(store, "task", "assign", other["id"], "bob", "--json", env={"BEADS_IDENTITY": "alice"})
    assert result.code == 0 and "on_update exited 3" in result.err
    assert result.json()["task"]["assigned_to"] == "bob"


# -- the fold: order independence, conflicts, clones ---------------------------------

def _event(task: str, version: int, clock: int, actor: str = "a", **fields) -> dict:
    op = fields.pop("op", "status")
    return rec.make("task_event", actor, clock, "r00000000001", "bd-", task=task, op=op,
                    expected_version=version, **fields)


def _fold(tmp: Path, name: str, batches: list[list[dict]], bulk: bool = False) -> Index:
    index = Index(tmp / f"{name}.sqlite3")
    if bulk:  # the first batch as a build loads it, the rest folded one by one
        with index.building(force=True):
            index.load([((r, rec.dumps(r).decode(), None, None) for r in batches[0])])
        batches = batches[1:]
    with index.transaction():
        for batch in batches:
            index.ingest((r, rec.dumps(r).decode(), None, None) for r in batch)
    return index


def test_race_across_clones_resolves_to_smaller_clock_id(tmp_path: Path) -> None:
    task = rec.make("task", "a", 1, "r00000000001", "bd-", title="t", priority="low",
                    status="backlog")
    one = _event(task["id"], 1, 2, "x", status="todo")
    two = _event(task["id"], 1, 2, "y", status="done")
    follow = _event(task["id"], 2, 3, "y", op="assign", assigned_to="y")
    winner, loser = sorted((one, two), key=rec.order_key)
    forward = _fold(tmp_path, "f", [[task], [one], [two, follow]])
    backward = _fold(tmp_path, "b", [[follow], [two], [one], [task]])
    assert forward.fingerprint() == backward.fingerprint()
    state = idx.get(forward.conn, task["id"])
    assert state["status"] == winner["status"] and state["version"] == 3
    assert state["assigned_to"] == "y"
    [conflict] = idx.conflicts(forward.conn)
    assert (conflict["event"], conflict["expected_version"], conflict["actual_version"]) == (
        loser["id"], 1, 2)
    assert conflict["moved_by"] == winner["actor"] and conflict["changes"] == {"status": loser["status"]}


def _post(event: dict, channel: str, legacy: bool = False) -> dict:
    """The board's post about a status event (``legacy``: written before posts named
    their event, so matched by version, writer and target status)."""
    post_id = rec.new_id("bd-")
    meta = {"task": event["task"], "title": "t", "from_status": None,
            "to_status": event["status"], "version": event["expected_version"] + 1}
    if not legacy:
        meta["event"] = event["id"]
    return rec.make("message", event["actor"], event["clock"], event["replica"], "bd-",
                    id=post_id, to=[channel], subject="s", body="b", priority=2,
                    type="notification", thread_id=post_id, replies_to=None, ephemeral=False,
                    action_requested="none", metadata=meta, **{"from": event["actor"]})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fold_does_not_depend_on_arrival_order(tmp_path_factory, data) -> None:
    tmp = tmp_path_factory.mktemp("fold")
    tasks = [rec.make("task", "a", 1, "r00000000001", "bd-", title=f"t{i}", priority="low",
                      status="backlog") for i in range(3)]
    events = []
    for clock in range(2, data.draw(st.integers(2, 14))):
        task = data.draw(st.sampled_from(tasks))
        op = data.draw(st.sampled_from(["status", "assign", "order", "delete", "comment"]))
        version = data.draw(st.integers(1, 5))
        if op == "comment":
            events.append(rec.make("comment", "c", clock, "r00000000002", "bd-",
                                   task=task["id"], content="hi"))
            continue
        fields = {"status": {"status": data.draw(st.sampled_from(STATUSES))},
                  "assign": {"assigned_to": "z"}, "order": {"sort_order": clock},
                  "delete": {}}[op]
        events.append(_event(task["id"], version, clock, op=op, **fields))
        if op == "status" and data.draw(st.booleans()):  # its post, in the same write
            events.append(_post(events[-1], data.draw(st.sampled_from(
                ["#review-queue", "#review-log"])), data.draw(st.booleans())))
    everything = tasks + events
    ordered = sorted(everything, key=rec.order_key)
    shuffled = data.draw(st.permutations(everything))
    cut = data.draw(st.integers(0, len(shuffled)))
    reference = _fold(tmp, "ref", [ordered]).fingerprint()
    assert _fold(tmp, "inc", [[r] for r in shuffled]).fingerprint() == reference
    assert _fold(tmp, "two", [shuffled[:cut], shuffled[cut:]]).fingerprint() == reference
    assert _fold(tmp, "bulk", [shuffled[:cut], shuffled[cut:]], bulk=True).fingerprint() == reference


def test_incremental_index_equals_rebuild(store: Path, bd) -> None:
    a = create(bd, store, "A")
    b = create(bd, store, "B", "--parent", a["id"], "--status", "review")
    ok(bd, store, "task", "status", a["id"], "review", "--version", "1")
    ok(bd, store, "task", "status", b["id"], "done", "--version", "1")
    ok(bd, store, "task", "comment", a["id"], "--content", "x")
    ok(bd, store, "task", "edit", a["id"], "--title", "A!")
    ok(bd, store, "task", "delete", b["id"])
    ws = Workspace.open(store)
    ws.refresh()
    incremental = ws.index.fingerprint()
    ws.index.reset()
    ws.refresh()
    assert ws.index.fingerprint() == incremental
    assert incremental["tasks"] and incremental["task_history"]
    ws.close()


def test_two_clones_converge_after_fetch(store: Path, bd, tmp_path: Path) -> None:
    task = create(bd, store, "Shared")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(store), str(clone))
    assert ok(bd, clone, "task", "show", task["id"], who="bob")["task"]["version"] == 1
    ok(bd, store, "task", "status", task["id"], "todo", "--version", "1")
    ok(bd, clone, "task", "status", task["id"], "in_progress", "--version", "1", who="bob")
    git(store, "fetch", "-q", str(clone), "+refs/heads/beadsmail:refs/remotes/clone/beadsmail")
    git(clone, "fetch", "-q", "origin")
    here = ok(bd, store, "task", "show", task["id"])
    there = ok(bd, clone, "task", "show", task["id"], who="bob")
    assert here == there
    assert here["task"]["version"] == 2 and len(here["conflicts"]) == 1
    loser = here["conflicts"][0]
    assert loser["actual_version"] == 2 and loser["moved_by"] != loser["actor"]
    assert ok(bd, store, "task", "conflicts") == here["conflicts"]
    assert "based on v1" in bd(store, "task", "conflicts").out


def test_task_rows_print_their_stored_json(store: Path, bd) -> None:
    for i in range(3):
        create(bd, store, f"T{i} é")
    ws = Workspace.open(store)
    ws.refresh()
    rows = idx.listing(ws.index.conn)
    assert json.loads(rows.__json__()) == list(rows) and len(rows) == 3
    assert rows[0]["title"] == "T2 é" and rows == list(rows)
    assert idx.listing(ws.index.conn, ["done"]).__json__() == "[]"
    ws.close()


def test_the_assignee_moves_their_own_task_unless_strict(store: Path, bd) -> None:
    register(store, "boss", "manager")
    register(store, "dev", "worker")
    register(store, "other", "project")
    task = create(bd, store, "Mine", "--assign", "dev", who="boss")
    ok(bd, store, "task", "status", task["id"], "in_progress", "--version", "1", who="dev")
    moved = ok(bd, store, "task", "status", task["id"], "review", "--version", "2", who="dev")
    assert moved["task"]["status"] == "review" and moved["posted"]
    err = fails(bd, store, "task", "status", task["id"], "done", "--version", "3", who="other")
    assert err["type"] == "permission_denied"
    assert "manager, reviewer and the task's assignee" in err["message"]
    # the assignee moves the status only: assigning, editing, deleting stay with the matrix
    assert "'task.assign'" in fails(bd, store, "task", "assign", task["id"], "other",
                                    who="dev")["message"]
    assert "'task.delete'" in fails(bd, store, "task", "delete", task["id"], who="dev")["message"]
    (store / ".beads" / "config.yaml").write_text("tasks:\n  strict_roles: true\n")
    err = fails(bd, store, "task", "status", task["id"], "in_progress", "--version", "3",
                who="dev")
    assert "'task.status'" in err["message"] and "tasks.strict_roles" in err["message"]
    assert "the task's assignee" not in err["message"].split(";")[1].split("(")[0]
    ok(bd, store, "task", "status", task["id"], "done", "--version", "3", who="boss")
    (store / ".beads" / "config.yaml").write_text("tasks:\n  strict_roles: maybe\n")
    err = fails(bd, store, "task", "status", task["id"], "review", "--version", "4", who="boss")
    assert err["type"] == "invalid_input" and "tasks.strict_roles" in err["message"]


def test_agent_roles_prints_the_matrix(store: Path, bd) -> None:
    roles = ok(bd, store, "agent", "roles")
    assert roles["roles"]["reviewer"] == sorted(roles["roles"]["reviewer"])
    assert "task.status" in roles["roles"]["reviewer"]
    assert "task.status" not in roles["roles"]["worker"]
    status = next(c for c in roles["capabilities"] if c["capability"] == "task.status")
    assert status["roles"] == ["manager", "reviewer"] and status["assignee"] is True
    assert roles["strict_roles"] is False and roles["default_role"] == "worker"
    text = bd(store, "agent", "roles").out
    assert "task.status" in text and "assignee" in text and "tasks.strict_roles" in text
    (store / ".beads" / "config.yaml").write_text("tasks:\n  strict_roles: true\n")
    strict = ok(bd, store, "agent", "roles")
    assert strict["strict_roles"] is True and strict["assignee"] == []


def _bd_sync(bd, path: Path, who: str) -> dict:
    result = bd(path, "sync", "--json", env={"BEADS_IDENTITY": who})
    assert result.code == 0, result.err
    return result.json()


def test_review_log_follows_the_moves_the_fold_applied(tmp_path: Path, bd) -> None:
    """Two clones move one task out of review from the same version and sync through a
    bare remote: one move wins, and only its #review-log post stays, on both clones."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    one = tmp_path / "one"
    git(tmp_path, "clone", "-q", str(remote), str(one))
    git(one, "commit", "-q", "--allow-empty", "-m", "start")
    git(one, "push", "-q", "origin", "main")
    assert bd(one, "init").code == 0
    task = create(bd, one, "Raced")
    ok(bd, one, "task", "status", task["id"], "review", "--version", "1")
    _bd_sync(bd, one, "alice")
    two = tmp_path / "two"
    git(tmp_path, "clone", "-q", str(remote), str(two))
    _bd_sync(bd, two, "bob")
    for path in (one, two):  # a member of #review-log on each clone
        ok(bd, path, "channel", "join", "review-log", who=f"carol-{path.name}")
    posts = [ok(bd, one, "task", "status", task["id"], "done", "--version", "2")["posted"],
             ok(bd, two, "task", "status", task["id"], "in_progress", "--version", "2",
                who="bob")["posted"]]
    arrived = []
    for path, who in ((one, "alice"), (two, "bob"), (one, "alice")):
        arrived += [m["id"] for m in _bd_sync(bd, path, who)["new_messages"]]
    views = []
    for path, who in ((one, "alice"), (two, "bob")):
        shown = ok(bd, path, "task", "show", task["id"], who=who)
        [lost] = shown["conflicts"]
        won = shown["history"][-1]
        log = ok(bd, path, "channel", "read", "review-log", who=who)["messages"]
        assert [m["metadata"]["event"] for m in log] == [won["event"]]
        assert log[0]["metadata"]["to_status"] == shown["task"]["status"] == won["to_status"]
        assert lost["event"] not in {m["metadata"].get("event") for m in log}
        queue = ok(bd, path, "channel", "read", "review-queue", who=who)["messages"]
        assert len(queue) == 1
        inbox = ok(bd, path, "mail", "inbox", who=f"carol-{path.name}")
        assert [m["id"] for m in inbox if m["to"] == ["#review-log"]] == [log[0]["id"]]
        views.append((shown, log))
    lost_post = next(p[0]["message"] for p in posts if p[0]["message"] != log[0]["id"])
    assert lost_post not in arrived  # never announced as new mail, nor its hook run
    assert views[0] == views[1]
    ws = Workspace.open(one)
    ws.refresh()
    incremental = ws.index.fingerprint()
    ws.index.reset()
    ws.refresh()
    assert ws.index.fingerprint() == incremental
    ws.close()
    text = bd(one, "task", "conflicts").out
    assert "{" not in text and "move to" in text and "not applied" in text


def test_posts_follow_the_applied_moves_in_any_arrival_order(tmp_path: Path) -> None:
    task = rec.make("task", "a", 1, "r00000000001", "bd-", title="t", priority="low",
                    status="review")
    one = _event(task["id"], 1, 2, "x", status="done")
    two = _event(task["id"], 1, 2, "y", status="in_progress")
    posts = {one["id"]: _post(one, "#review-log"), two["id"]: _post(two, "#review-log", True)}
    winner = min((one, two), key=rec.order_key)
    orders = ([[task, one, posts[one["id"]]], [two, posts[two["id"]]]],
              [[two, posts[two["id"]]], [task], [posts[one["id"]]], [one]],
              [[task, two, one, *posts.values()]])
    for n, batches in enumerate(orders):
        index = _fold(tmp_path, f"o{n}", batches)
        shown = [r[0] for r in index.conn.execute("SELECT id FROM messages")]
        assert shown == [posts[winner["id"]]["id"]], n
        plan = " ".join(r[3] for r in index.conn.execute(
            "EXPLAIN QUERY PLAN " + idx.POSTS_OF, (task["id"],)))
        assert "records_task_posts" in plan
        index.close()
