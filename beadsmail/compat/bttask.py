"""bttask's command line on beadsmail: the kanban board of Agents Orchestrator.

The reference's options (``create --title T --priority P --description D``,
``status --id T --status S --version N``, ``comment --id T --content C``,
``delete --id T``) and the published script's positionals (``add TITLE...``,
``status ID STATE``, ``comment ID TEXT...``, ``assign ID AGENT``, ``show ID``,
``delete ID``) call ``tasks`` as the agent from ``BTMSG_AGENT_ID``: the same
board ``bd task`` shows, with its version locking, review-queue posts and roles.
A status move without ``--version`` (the published script has none) moves from
the version just read. The script's ``progress`` is ``in_progress``; its
``critical`` priority is ``high``. ``--json`` prints bttask's columns
(``assigned_to``, ``created_by``, ``group_id``, ``parent_task_id``,
``sort_order``, ``version``, ...). ``list``, ``board`` and ``review-count`` show
the caller's group's tasks (bttask's ``list_tasks`` is per group), another group's
with ``--group G``, every group's for a caller in none.
"""

from __future__ import annotations

from beadsmail import groups, tasks
from beadsmail.errors import InvalidInput

STATUS_ALIASES = {"progress": "in_progress", "in-progress": "in_progress"}
PRIORITY_ALIASES = {"critical": "high"}
MANY = 10**6


def task_row(task: dict) -> dict:
    """A task as a row of bttask's ``tasks`` table."""
    return {"id": task["id"], "title": task["title"], "description": task["description"],
            "status": task["status"], "priority": task["priority"],
            "assigned_to": task["assigned_to"], "created_by": task["created_by"],
            "group_id": task["group"], "parent_task_id": task["parent"],
            "sort_order": task["sort_order"], "version": task["version"],
            "created_at": task["created_at"], "updated_at": task["updated_at"]}


def comment_row(c: dict, task_id: str) -> dict:
    return {"id": c["id"], "task_id": task_id, "agent_id": c["actor"],
            "content": c["content"], "created_at": c["created_at"]}


def _id(opts: dict, rest: list[str]) -> str:
    token = opts.get("--id") or (rest.pop(0) if rest else None)
    if not token:
        raise InvalidInput("give the task: --id TASK-ID")
    return token


def _line(t: dict) -> str:
    who = f" @{t['assigned_to']}" if t["assigned_to"] else ""
    return f"  [{t['id']}] {t['status']:<11} {t['priority']:<6} v{t['version']} {t['title']}{who}"


def _written(result: dict, verb: str) -> tuple[dict, str]:
    row = task_row(result["task"])
    lines = [*result.get("warnings", ()), f"✓ {verb} [{row['id']}] {row['title']} "
             f"({row['status']}, version {row['version']})"]
    lines += [f"  posted to {p['channel']}" for p in result.get("posted", ())]
    return row, "\n".join(lines)


# -- commands -------------------------------------------------------------------

def _group(ws, me: str | None, opts: dict) -> str | None:
    """``--group``, else the caller's registered group (None: every group)."""
    if opts.get("--group") or not me:
        return opts.get("--group")
    ws.refresh()
    return groups.of(ws.index.conn, me)


def listing(ws, me, opts: dict, rest: list[str]) -> tuple[list, str]:
    found = [task_row(t) for t in tasks.listing(ws, include_done=True,
                                                group=_group(ws, me, opts))]
    return found, "\n".join(["Tasks:", *map(_line, found)]) if found else "No tasks."


def create(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    title = opts.get("--title") or " ".join(rest)
    if not title.strip():
        raise InvalidInput("a task needs a title: --title TEXT")
    priority = opts.get("--priority") or "medium"
    result = tasks.create(ws, me, title, opts.get("--description") or opts.get("--desc") or "",
                          PRIORITY_ALIASES.get(priority, priority), assign=opts.get("--assign"),
                          parent=opts.get("--parent"), status=opts.get("--status") or "backlog")
    return _written(result, "Created")


def status(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    token = _id(opts, rest)
    new = opts.get("--status") or (rest.pop(0) if rest else None)
    if not new:
        raise InvalidInput("give the new status: --status backlog|todo|in_progress|review|done")
    new = STATUS_ALIASES.get(new, new)
    version = int(opts["--version"]) if opts.get("--version") else None
    if version is None:
        version = tasks.show(ws, token)["task"]["version"]
    return _written(tasks.move(ws, me, token, new, version), "Moved")


def assign(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    token = _id(opts, rest)
    agent = opts.get("--to") or (rest.pop(0) if rest else None)
    if not agent:
        raise InvalidInput("give the agent: bttask assign TASK-ID AGENT")
    return _written(tasks.assign(ws, me, token, agent), "Assigned")


def comment(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    token = _id(opts, rest)
    content = opts.get("--content") or " ".join(rest)
    done = tasks.comment(ws, me, token, content)
    row = comment_row(done["comment"], done["comment"]["task"])
    return row, "\n".join([*done["warnings"], f"✓ Comment added to [{row['task_id']}]"])


def delete(ws, me: str, opts: dict, rest: list[str]) -> tuple[dict, str]:
    token = _id(opts, rest)
    result = tasks.delete(ws, me, token)
    return {"id": result["task"]["id"], "deleted": True}, f"✓ Deleted [{result['task']['id']}]"


def show(ws, me, opts: dict, rest: list[str]) -> tuple[dict, str]:
    found = tasks.show(ws, _id(opts, rest))
    row = task_row(found["task"])
    row["comments"] = [comment_row(c, row["id"]) for c in found["comments"]]
    lines = [_line(row), f"  {row['description']}" if row["description"] else ""]
    lines += [f"    {c['agent_id']}: {c['content']}" for c in row["comments"]]
    return row, "\n".join(line for line in lines if line)


def comments(ws, me, opts: dict, rest: list[str]) -> tuple[list, str]:
    task = tasks.show(ws, _id(opts, rest))["task"]["id"]
    found = [comment_row(c, task) for c in tasks.comments(ws, task)]
    return found, "\n".join(f"  {c['agent_id']}: {c['content']}" for c in found) or "No comments."


def board(ws, me, opts: dict, rest: list[str]) -> tuple[dict, str]:
    found = tasks.board(ws, group=_group(ws, me, opts))
    columns = {c["status"]: [task_row(t) for t in c["tasks"]] for c in found["columns"]}
    lines = []
    for column in found["columns"]:
        lines.append(f"{column['status']} ({column['count']})")
        lines += [_line(t) for t in columns[column["status"]]]
    return columns, "\n".join(lines)


def review_count(ws, me, opts: dict, rest: list[str]) -> tuple[int, str]:
    count = tasks.review_count(ws, _group(ws, me, opts))["review"]
    return count, str(count)


OPTIONAL_GROUP = {"--group"}
COMMANDS: dict[str, tuple] = {
    "list": (listing, {"--all"}, OPTIONAL_GROUP, (0, 0), False),
    "create": (create, set(), {"--title", "--priority", "--description", "--assign", "--parent",
                               "--status"}, (0, MANY), True),
    "add": (create, set(), {"--desc", "--description", "--priority", "--assign", "--parent"},
            (0, MANY), True),
    "status": (status, set(), {"--id", "--status", "--version"}, (0, 2), True),
    "assign": (assign, set(), {"--id", "--to"}, (0, 2), True),
    "comment": (comment, set(), {"--id", "--content"}, (0, MANY), True),
    "comments": (comments, set(), {"--id"}, (0, 1), False),
    "delete": (delete, set(), {"--id"}, (0, 1), True),
    "show": (show, set(), {"--id"}, (0, 1), False),
    "board": (board, set(), OPTIONAL_GROUP, (0, 0), False),
    "review-count": (review_count, set(), OPTIONAL_GROUP, (0, 0), False),
}

USAGE = """\
usage: bttask <command> [options] [--json]     (the agent: BTMSG_AGENT_ID)
  list [--all] [--group G]
  create --title TITLE [--priority low|medium|high] [--description TEXT]
  add TITLE... [--desc TEXT] [--priority P] [--assign AGENT] [--parent TASK]
  status --id TASK --status STATUS --version N      status TASK STATUS
  assign TASK AGENT
  comment --id TASK --content TEXT                  comment TASK TEXT...
  comments TASK | show TASK | board | review-count [--group G]
  delete --id TASK                                  delete TASK"""
