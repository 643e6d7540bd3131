"""``bd task``: the kanban board (create, list, show, move, assign, edit, comment, board).

``bd task list`` is the hot read path: ``fast()`` parses its options without
importing typer (which costs more than the listing itself) and falls back to the
typer app for anything it does not fully understand, such as ``--help`` or a bad
value, so both paths print the same output and the same errors. typer is
imported inside ``register()``; annotations are evaluated there (no
``from __future__ import annotations``), where ``typer`` is bound.
"""

from typing import Annotated

from beadsmail import tasks
from beadsmail.cli import env
from beadsmail.cli.output import emit

LIST_FLAGS = ("--json", "--all", "--mine")
COLUMNS = (("id", 16), ("status", 11), ("priority", 8), ("version", 7), ("assigned_to", 14))


def _short(value: object, width: int) -> str:
    text = "-" if value in (None, "") else str(value)
    return text if len(text) <= width else text[:width - 1] + "~"


def _row(task: dict) -> str:
    cells = [_short(task[key], width).ljust(width) for key, width in COLUMNS]
    return "  ".join(cells + [task["title"]]) + _mark(task)


def render_list(tasks: list[dict]) -> str:
    if not tasks:
        return "no tasks"
    header = "  ".join([("ver" if k == "version" else "assignee" if k == "assigned_to" else k)
                        .upper().ljust(w) for k, w in COLUMNS] + ["TITLE"])
    return "\n".join([header] + [_row(t) for t in tasks])


def render_task(task: dict) -> str:
    lines = [f"{task['id']}  {task['title']}" + ("  [deleted]" if task["deleted"] else ""),
             f"  status {task['status']}, version {task['version']}, priority {task['priority']}, "
             f"assigned to {task['assigned_to'] or 'nobody'}"]
    extra = [f"{k} {task[k]}" for k in ("parent", "group") if task[k]]
    if task["sort_order"]:
        extra.append(f"sort order {task['sort_order']}")
    if extra:
        lines.append("  " + ", ".join(extra))
    lines.append(f"  created by {task['created_by']} at {task['created_at']}; "
                 f"last moved by {task['updated_by']} at {task['updated_at']}")
    if task.get("verified"):
        lines.append(f"  signed: {task['verified']}"
                     + (" (every move)" if task["verified"] == "verified" else ""))
    return "\n".join(lines)


def _render_change(d: dict) -> str:
    lines = [render_task(d["task"])]
    lines += [f"posted {p['message']} to {p['channel']}" for p in d.get("posted", ())]
    return "\n".join(lines)


def _render_comments(comments: list[dict]) -> str:
    return "\n".join(f"{c['created_at']}  {c['actor']}  ({c['id']}){_mark(c)}\n  {c['content']}"
                     for c in comments) or "no comments"


def _mark(entry: dict) -> str:
    """A signed view's mark as a word (``signing.MARKS``)."""
    from beadsmail.signing import MARKS

    mark = MARKS.get(entry.get("verified", ""), "")
    return f"  {mark}" if mark else ""


def _render_show(d: dict) -> str:
    parts = [render_task(d["task"])]
    if d["task"]["description"]:
        parts.append("\n" + d["task"]["description"])
    if d["subtasks"]:
        parts.append("\nsubtasks:\n" + render_list(d["subtasks"]))
    parts.append("\nhistory:")
    for h in d["history"]:
        if h["op"] == "create":
            move = f"created in {h['to_status']}"
        elif h["from_status"] != h["to_status"]:
            move = f"{h['from_status']} -> {h['to_status']}"
        else:
            move = ", ".join(f"{k}={v}" for k, v in h["changes"].items()) or "-"
        parts.append(f"  v{h['version']}  {h['at']}  {h['actor']}  {h['op']}  {move}{_mark(h)}")
    if d["conflicts"]:
        parts.append("\nnot applied (lost a race between clones; re-apply by hand if still wanted):")
    parts += [f"  {c['at']}  {c['actor']}  {change_text(c['op'], c['changes'])}: "
              f"{_why(c)}" for c in d["conflicts"]]
    if d["comments"]:
        parts.append("\ncomments:\n" + _render_comments(d["comments"]))
    return "\n".join(parts)


def _value(value: object) -> str:
    return "nothing" if value is None else f'"{value}"' if isinstance(value, str) else str(value)


def change_text(op: str, changes: dict) -> str:
    """A task event's change in words: ``move to review``, ``assign to w1``, ..."""
    if op == "status":
        return f"move to {changes.get('status')}"
    if op == "assign":
        return f"assign to {changes.get('assigned_to') or 'nobody'}"
    if op == "order":
        return f"sort order {changes.get('sort_order')}"
    if op == "delete":
        return "delete"
    return "edit " + (", ".join(f"{k} to {_value(v)}" for k, v in changes.items()) or "nothing")


def _why(c: dict) -> str:
    if c["reason"] == "deleted":
        return f"the task had been deleted (by {c['moved_by']})"
    return (f"based on v{c['expected_version']}, but the task was at v{c['actual_version']} "
            f"(last changed by {c['moved_by']})")


def _render_conflicts(rows: list[dict]) -> str:
    if not rows:
        return "no conflicts"
    return "\n".join(["Changes not applied (each lost a race between clones; re-apply by hand "
                      "if still wanted):"] + [
        f"  {c['task']}  {c['at']}  {c['actor']}  {change_text(c['op'], c['changes'])}: "
        f"{_why(c)}" for c in rows])


def render_board(d: dict) -> str:
    import io
    import shutil
    import sys

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from beadsmail.cli.output import Escaped, visible

    table = Table(expand=True, show_lines=False)
    for col in d["columns"]:
        table.add_column(Text(f"{col['status']} ({col['count']})"), overflow="fold", ratio=1,
                         no_wrap=False, min_width=16)
    cells = []
    for col in d["columns"]:
        lines = [f"{t['id']}\n{t['title']}\n{t['priority']} · {t['assigned_to'] or '-'} · "
                 f"v{t['version']}" for t in col["tasks"]]
        if col["count"] > len(col["tasks"]):
            lines.append(f"... {col['count'] - len(col['tasks'])} more")
        cells.append(Text(visible("\n\n".join(lines))))  # Text: no markup, fields as text
    table.add_row(*cells)
    out = io.StringIO()
    width = max(shutil.get_terminal_size((120, 40)).columns, 100)  # five readable columns
    Console(file=out, width=width, force_terminal=sys.stdout.isatty()).print(table)
    return Escaped(out.getvalue().rstrip("\n"))


def _emit(result: dict, json_: bool, render) -> None:
    from beadsmail.cli.output import emit_written

    emit_written(result, json_, render)


def _list_options(args: list[str]) -> dict | None:
    """``bd task list`` options as typer would parse them, or None to let typer do it."""
    from beadsmail.cli import argv

    parsed = argv.parse(args, flags=LIST_FLAGS,
                        options=("--assigned", "--group", "--limit", "--identity"),
                        repeated=("--status",), numbers={"--limit": _count})
    if parsed is None or (parsed[0]["--mine"] and "--assigned" in parsed[0]):
        return None  # (typer says what is wrong)
    opts = parsed[0]
    return {"--assigned": None, "--group": None, "--limit": None, "--identity": None, **opts}


def _assignee(ws, assigned: str | None, mine: bool, flag: str | None) -> str | None:
    """``--assigned``, or with ``--mine`` the identity the command runs as."""
    return env.identity(ws, flag) if mine else assigned


def _count(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def fast(args: list[str]) -> bool:
    """Run ``bd task list`` or ``review-count`` without typer; False if typer should parse
    ``args``."""
    if args[:1] == ["review-count"]:
        from beadsmail.cli import argv

        parsed = argv.parse(args[1:], flags=("--json",), options=("--group",))
        if parsed is not None:
            run_review_count(parsed[0].get("--group"), parsed[0]["--json"])
        return parsed is not None
    opts = _list_options(args[1:]) if args[:1] == ["list"] else None
    if opts is None:
        return False
    ws = env.workspace()
    emit(tasks.listing(ws, opts["--status"], _assignee(ws, opts["--assigned"], opts["--mine"],
                                                       opts["--identity"]),
                       opts["--group"], opts["--all"], opts["--limit"]), opts["--json"], render_list)
    return True


def run_review_count(group: str | None, as_json: bool) -> None:
    emit(tasks.review_count(env.workspace(), group), as_json, lambda d: str(d["review"]))


def _cli():
    """typer and the shared option types, imported only when the typer app is built."""
    import typer

    from beadsmail.cli import common

    task_id = Annotated[str, typer.Argument(
        metavar="TASK", help="Task id (or a unique prefix of one).")]
    version = Annotated[int | None, typer.Option(
        "--version", help="The version you read; refused if the task has moved since.")]
    return typer, common, task_id, version


def _mine_options():
    """``--assigned`` and ``--mine`` of ``list`` and ``board``, and the check of the pair."""
    import typer

    assigned = Annotated[str | None, typer.Option(help="Only tasks assigned to this agent.")]
    mine = Annotated[bool, typer.Option(
        "--mine", help="Only tasks assigned to me (the identity this runs as).")]

    def check(assigned: str | None, mine: bool) -> None:
        if mine and assigned is not None:
            raise typer.BadParameter("give --assigned AGENT or --mine, not both",
                                     param_hint="'--mine'")
    return assigned, mine, check


def register(app) -> None:
    import typer

    task_app = typer.Typer(help="Tasks on a kanban board: backlog, todo, in_progress, review, "
                           "done.", no_args_is_help=True)
    for commands in (_create_and_move, _changes, _reads):
        commands(task_app)
    app.add_typer(task_app, name="task")


def _create_and_move(task_app) -> None:
    """create, status, assign."""
    typer, common, TaskId, Version = _cli()
    identity, workspace = common.identity, common.workspace

    @task_app.command("create")
    def create(
        title: Annotated[str, typer.Option("--title", help="Short title (required).")],
        description: Annotated[str, typer.Option("--description", "-m", help="Longer text.")] = "",
        priority: Annotated[str, typer.Option(help="low, medium or high.")] = "medium",
        assign: Annotated[str | None, typer.Option(help="Assign to this agent.")] = None,
        parent: Annotated[str | None, typer.Option(help="Parent task id.")] = None,
        status: Annotated[str, typer.Option(help="Initial status.")] = tasks.DEFAULT_STATUS,
        group: Annotated[str | None, typer.Option(
            help="Group (default: your registered group).")] = None,
        identity_: common.Identity = None, json_: common.Json = False,
    ) -> None:
        """Create a task (version 1, status backlog unless --status).  Example: bd task create --title "Fix login" --priority high"""
        ws = workspace()
        _emit(tasks.create(ws, identity(ws, identity_), title, description, priority, assign,
                           parent, status, group), json_, _render_change)

    @task_app.command("status")
    def status(
        task: TaskId,
        new_status: Annotated[str, typer.Argument(
            metavar="STATUS", help="backlog, todo, in_progress, review or done.")],
        version: Annotated[int, typer.Option(
            "--version", help="The version you read (required); refused if it moved since.")],
        identity_: common.Identity = None, json_: common.Json = False,
    ) -> None:
        """Move a task to another status (optimistic locking by --version).  Example: bd task status bd-1a2b review --version 3"""
        ws = workspace()
        _emit(tasks.move(ws, identity(ws, identity_), task, new_status, version), json_,
              _render_change)

    @task_app.command("assign")
    def assign(
        task: TaskId,
        agent: Annotated[str | None, typer.Argument(help="Agent to assign.")] = None,
        unassign: Annotated[bool, typer.Option("--unassign", help="Assign to nobody.")] = False,
        version: Version = None, identity_: common.Identity = None, json_: common.Json = False,
    ) -> None:
        """Assign a task to an agent (or --unassign).  Example: bd task assign bd-1a2b worker-2"""
        if (agent is None) == (not unassign):
            raise typer.BadParameter("give an AGENT or --unassign (not both)")
        ws = workspace()
        _emit(tasks.assign(ws, identity(ws, identity_), task, agent, version), json_,
              _render_change)


def _changes(task_app) -> None:
    """edit, order, delete, comment."""
    typer, common, TaskId, Version = _cli()
    identity, workspace = common.identity, common.workspace

    @task_app.command("edit")
    def edit(
        task: TaskId,
        title: Annotated[str | None, typer.Option(help="New title.")] = None,
        description: Annotated[str | None, typer.Option(
            "--description", "-m", help="New description.")] = None,
        priority: Annotated[str | None, typer.Option(help="low, medium or high.")] = None,
        parent: Annotated[str | None, typer.Option(help="New parent task id.")] = None,
        no_parent: Annotated[bool, typer.Option("--no-parent", help="Remove the parent.")] = False,
        group: Annotated[str | None, typer.Option(help="New group.")] = None,
        no_group: Annotated[bool, typer.Option("--no-group", help="Remove the group.")] = False,
        version: Version = None, identity_: common.Identity = None, json_: common.Json = False,
    ) -> None:
        """Edit a task's title, description, priority, parent or group.  Example: bd task edit bd-1a2b --priority high"""
        changes = {k: v for k, v in (("title", title), ("description", description),
                                     ("priority", priority), ("parent", parent),
                                     ("group", group)) if v is not None}
        changes.update({k: None for k, flag in (("parent", no_parent), ("group", no_group))
                        if flag})
        ws = workspace()
        _emit(tasks.edit(ws, identity(ws, identity_), task, changes, version), json_,
              _render_change)

    @task_app.command("order")
    def order(
        task: TaskId,
        sort_order: Annotated[int, typer.Argument(metavar="N", help="Sort order (lower first).")],
        version: Version = None, identity_: common.Identity = None, json_: common.Json = False,
    ) -> None:
        """Set a task's sort order; lists show lower numbers first.  Example: bd task order bd-1a2b 10"""
        ws = workspace()
        _emit(tasks.order(ws, identity(ws, identity_), task, sort_order, version), json_,
              _render_change)

    @task_app.command("delete")
    def delete(task: TaskId, version: Version = None, identity_: common.Identity = None,
               json_: common.Json = False) -> None:
        """Delete a task (a tombstone; history and comments stay stored).  Example: bd task delete bd-1a2b"""
        ws = workspace()
        _emit(tasks.delete(ws, identity(ws, identity_), task, version), json_, _render_change)

    @task_app.command("comment")
    def comment(
        task: TaskId,
        content: Annotated[str, typer.Option("--content", "-m", help="The comment text.")],
        identity_: common.Identity = None, json_: common.Json = False,
    ) -> None:
        """Comment on a task (anyone may).  Example: bd task comment bd-1a2b -m "LGTM" """
        ws = workspace()
        _emit(tasks.comment(ws, identity(ws, identity_), task, content), json_,
              lambda d: f"commented {d['comment']['id']} on {d['comment']['task']}")


def _reads(task_app) -> None:
    """list, show, comments, conflicts, review-count, board."""
    typer, common, TaskId, _ = _cli()
    workspace = common.workspace
    Assigned, Mine, check_mine = _mine_options()

    @task_app.command("list")
    def list_(
        status: Annotated[list[str] | None, typer.Option(help="Only this status (repeatable).")] = None,
        assigned: Assigned = None, mine: Mine = False,
        group: Annotated[str | None, typer.Option(help="Only tasks of this group.")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Include done tasks.")] = False,
        limit: Annotated[int | None, typer.Option(help="At most this many tasks.")] = None,
        identity_: common.Identity = None, json_: common.Json = False,
    ) -> None:
        """List live tasks by sort order, newest first (done ones with --all).  Example: bd task list --status review --json"""
        check_mine(assigned, mine)
        ws = workspace()
        emit(tasks.listing(ws, status, _assignee(ws, assigned, mine, identity_), group, all_,
                           limit), json_, render_list)

    @task_app.command("show")
    def show(task: TaskId, json_: common.Json = False) -> None:
        """Show a task: fields, subtasks, comments, history of moves, conflicts.  Example: bd task show bd-1a2b"""
        emit(tasks.show(workspace(), task), json_, _render_show)

    @task_app.command("comments")
    def comments(task: TaskId, json_: common.Json = False) -> None:
        """A task's comments, oldest first.  Example: bd task comments bd-1a2b --json"""
        emit(tasks.comments(workspace(), task), json_, _render_comments)

    @task_app.command("conflicts")
    def conflicts(
        task: Annotated[str | None, typer.Argument(metavar="TASK", help="Only this task.")] = None,
        json_: common.Json = False,
    ) -> None:
        """Changes that lost a version race between clones (never applied, never lost).  Example: bd task conflicts"""
        emit(tasks.conflicts(workspace(), task), json_, _render_conflicts)

    @task_app.command("review-count")
    def review_count(group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
                     json_: common.Json = False) -> None:
        """How many tasks are in review.  Example: bd task review-count --group backend --json"""
        run_review_count(group, json_)

    @task_app.command("board")
    def board(
        group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
        assigned: Assigned = None, mine: Mine = False,
        limit: Annotated[int, typer.Option(help="Tasks shown per column.")] = 20,
        identity_: common.Identity = None, json_: common.Json = False,
    ) -> None:
        """The five columns side by side, with counts.  Example: bd task board --mine"""
        check_mine(assigned, mine)
        ws = workspace()
        emit(tasks.board(ws, group, _assignee(ws, assigned, mine, identity_), limit), json_,
             render_board)
