"""Tasks: the kanban board, with optimistic locking, comments and the review queue.

A task is created by a ``task`` record (version 1) and changed only by
``task_event`` records, each carrying the version its writer read
(``expected_version``); comments are ``comment`` records. The state is a fold
(see ``index.tasks``): events replayed in ``(clock, id)`` order, an event whose
version does not match becoming a recorded conflict, never a lost write.

Within one clone the version is checked under the store lock, in the ``check``
callback of ``Workspace.write``, together with the permission check, so of
several writers that read the same version exactly one succeeds and the others
get a ``Conflict`` naming the current version and who moved the task there.
The records to write are built inside that callback too: entering ``review``
posts a notification to ``#review-queue`` and leaving it posts to
``#review-log``, in the same commit as the move, creating the channel first when
the index does not know it yet (so exactly once per store, barring a race
between clones, which a create record tolerates). A post names the event it
announces (``metadata.event``), and the index shows it only while the fold
applies that move: a move that loses a race between clones loses its post too.

Permissions: the role matrix (``permissions``), and a task's assignee may move it
unless ``tasks.strict_roles`` is true; the rule is checked under the lock against
the task as it stands.

Transitions: any move between the five statuses is allowed (a task can be sent
back from review, or reopened from done); moving a task to the status it is
already in is refused. Hooks run after the commit: ``on_create``, ``on_update``
for every change and comment, and ``on_close`` when a task moves to ``done`` or
is deleted.
"""

from __future__ import annotations

from beadsmail import permissions
from beadsmail import records as rec
from beadsmail.errors import Conflict, InvalidInput, NotFound
from beadsmail.index import tasks as idx

STATUSES = idx.STATUSES
PRIORITIES = ("low", "medium", "high")
DEFAULT_STATUS = "backlog"
DEFAULT_PRIORITY = "medium"
REVIEW_QUEUE = "review-queue"
REVIEW_LOG = "review-log"
CHANNEL_TEXT = {REVIEW_QUEUE: "Tasks waiting for review (posted by 'bd task status')",
                REVIEW_LOG: "Review decisions: tasks moved out of review"}
MAX_TITLE = 500
MAX_TEXT = 65536
EDITABLE = ("title", "description", "priority", "parent", "group")


# -- input checks ------------------------------------------------------------

def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidInput(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
    return value


def _title(title: str | None) -> str:
    title = (title or "").strip()
    if not title:
        raise InvalidInput("the task title is empty; give one with --title TEXT")
    if len(title) > MAX_TITLE:
        raise InvalidInput(f"the task title has {len(title)} characters; keep it to {MAX_TITLE}")
    return title


def _text(text: str, what: str) -> str:
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"the {what} has {len(text)} characters; keep it to {MAX_TEXT}")
    return text


def _version(version: int | None) -> int | None:
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or version < 1):
        raise InvalidInput(f"version {version!r} is not a task version: pass the version "
                           "'bd task show' printed (1 or more)")
    return version


def _resolve(ws, token: str, what: str = "task") -> str:
    try:
        return ws.index.resolve(token, ws.prefix, kinds=("task",), what=what)
    except NotFound:
        raise NotFound(f"{what} {token} does not exist; list tasks with 'bd task list --all'") \
            from None


def _live(index, task_id: str, what: str = "task") -> dict:
    task = idx.get(index.conn, task_id)
    if task is None:
        raise NotFound(f"{what} {task_id} does not exist; list tasks with 'bd task list --all'")
    if task["deleted"]:
        raise NotFound(f"{what} {task_id} was deleted by {task['updated_by']}")
    return task


def _check_parent(index, task_id: str | None, parent: str) -> None:
    """Refuse a parent that is missing, deleted, or a descendant of ``task_id``."""
    _live(index, parent, "parent task")
    seen, node = set(), parent
    while node is not None and node not in seen:
        if node == task_id:
            raise InvalidInput(f"making {parent} the parent of {task_id} would make a cycle; "
                               "choose a task that is not one of its subtasks")
        seen.add(node)
        node = idx.parent_of(index.conn, node)


def _role(ws, index, actor: str, capability: str, task: dict | None = None) -> str:
    """The actor's role, if it may use ``capability`` (on ``task``): see ``permissions.allows``."""
    return permissions.require(index, actor, capability, ws.config["agents"]["default_role"],
                               task=task, strict=permissions.strict(ws.config))


# -- review-queue posts ------------------------------------------------------

def _posts(ws, index, actor: str, task: dict, before: str | None, after: str,
           event: str) -> list:
    """Channel and message records for a move into or out of review; ``event`` is the
    record of the move (the task's id for its creation): the index shows the post only
    while the fold applies that move (``index.tasks``)."""
    if after == "review" and before != "review":
        channel, subject = REVIEW_QUEUE, f"Review: {task['title']}"
        body = f"{task['id']} \"{task['title']}\" is ready for review (moved by {actor})."
    elif before == "review" and after != "review":
        channel, subject = REVIEW_LOG, f"Reviewed ({after}): {task['title']}"
        body = f"{task['id']} \"{task['title']}\" moved from review to {after} by {actor}."
    else:
        return []
    items: list = [("channel", {"op": "create", "name": name, "description": CHANNEL_TEXT[name]})
                   for name in idx.missing_channels(index.conn, [channel])]
    message_id = rec.new_id(ws.prefix)
    items.append(("message", {
        "id": message_id, "from": actor, "to": [f"#{channel}"], "subject": subject[:MAX_TITLE],
        "body": body, "priority": 2, "type": "notification", "thread_id": message_id,
        "replies_to": None, "ephemeral": False, "action_requested": "none",
        "metadata": {"task": task["id"], "title": task["title"], "from_status": before,
                     "to_status": after, "version": task["version"], "event": event}}))
    return items


def _posted(records: list[dict]) -> list[dict]:
    return [{"channel": r["to"][0], "message": r["id"]} for r in records if r["kind"] == "message"]


def _hooks(ws, runs: list[tuple[str, dict, str]]) -> list[str]:
    runner = ws.hook_runner()  # one time budget for all of this command's hooks
    warnings: list[str] = []
    for hook, record, event in runs:
        warnings += runner.run(ws.loc.worktree, hook, record, event)
    return warnings


# -- writing -----------------------------------------------------------------

def create(ws, actor: str, title: str, description: str = "", priority: str = DEFAULT_PRIORITY,
           assign: str | None = None, parent: str | None = None, status: str = DEFAULT_STATUS,
           group: str | None = None, sort_order: int = 0) -> dict:
    """Create a task (version 1); return it with any review-queue post and hook warnings."""
    fields = {"title": _title(title), "description": _text(description or "", "description"),
              "priority": _choice(priority, PRIORITIES, "priority"),
              "status": _choice(status, STATUSES, "status"), "sort_order": sort_order,
              "assigned_to": rec.check_identity(assign, "assignee") if assign else None}
    if group is not None:
        rec.check_identity(group, "group")
    ws.refresh()
    fields["parent"] = _resolve(ws, parent, "parent task") if parent else None
    fields["id"] = rec.new_id(ws.prefix)
    items: list = []

    def check(index) -> None:
        _role(ws, index, actor, "task.create")
        if fields["parent"]:
            _check_parent(index, None, fields["parent"])
        fields["group"] = group if group is not None else idx.agent_group(index.conn, actor)
        task = {"id": fields["id"], "title": fields["title"], "version": 1}
        items[:] = [("task", dict(fields))] + _posts(ws, index, actor, task, None, status,
                                                     fields["id"])

    title = " ".join(fields["title"].split())[:100]
    written = ws.write(actor, items, f"task: {actor} creates {fields['id']}: {title}", check=check)
    record = written.records[0]
    warnings = written.warnings + _hooks(ws, [("on_create", record, "create")])
    return {"task": idx.get(ws.index.conn, record["id"]), "posted": _posted(written.records),
            "warnings": warnings}


def _change(ws, actor: str, token: str, op: str, version: int | None, fields: dict) -> dict:
    """Write one task_event after checking permission and version under the lock."""
    _version(version)
    ws.refresh()
    task_id = _resolve(ws, token)
    items: list = []

    def check(index) -> None:
        task = _live(index, task_id)
        _role(ws, index, actor, f"task.{op}", task)
        if version is not None and version != task["version"]:
            raise Conflict(
                f"task {task_id} is at version {task['version']}, not {version} (last moved by "
                f"{task['updated_by']} at {task['updated_at']}); show it again and retry "
                f"with --version {task['version']}",
                task=task_id, expected_version=version, current_version=task["version"],
                updated_by=task["updated_by"])
        if op == "status" and fields["status"] == task["status"]:
            raise InvalidInput(f"task {task_id} is already in {task['status']}; nothing to do")
        if fields.get("parent"):
            _check_parent(index, task_id, fields["parent"])
        event = {"id": rec.new_id(ws.prefix), "task": task_id, "op": op,
                 "expected_version": task["version"], **fields}
        posts = _posts(ws, index, actor, {**task, "version": task["version"] + 1},
                       task["status"], fields["status"], event["id"]) if op == "status" else []
        items[:] = [("task_event", event)] + posts

    what = f" -> {fields['status']}" if op == "status" else ""
    written = ws.write(actor, items, f"task: {actor} {op} {task_id}{what}", check=check)
    event = written.records[0]
    runs = [("on_close" if op == "delete" else "on_update", event, op)]
    if op == "status" and fields["status"] == "done":
        runs.append(("on_close", event, "done"))
    return {"task": idx.get(ws.index.conn, task_id), "event": event["id"],
            "posted": _posted(written.records), "warnings": written.warnings + _hooks(ws, runs)}


def move(ws, actor: str, token: str, status: str, version: int | None) -> dict:
    """Move a task to ``status``; ``version`` is the version the caller read (required)."""
    _choice(status, STATUSES, "status")
    if version is None:
        raise InvalidInput("a status move needs the version you read: pass --version N "
                           "(see 'bd task show')")
    return _change(ws, actor, token, "status", version, {"status": status})


def assign(ws, actor: str, token: str, assignee: str | None, version: int | None = None) -> dict:
    """Assign a task to ``assignee`` (None: unassign)."""
    if assignee is not None:
        rec.check_identity(assignee, "assignee")
    return _change(ws, actor, token, "assign", version, {"assigned_to": assignee})


def edit(ws, actor: str, token: str, changes: dict, version: int | None = None) -> dict:
    """Change a task's title, description, priority, parent and/or group."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"cannot edit {', '.join(sorted(unknown))}: editable fields are "
                           f"{', '.join(EDITABLE)}")
    if not changes:
        raise InvalidInput("nothing to change: pass --title, --description, --priority, "
                           "--parent or --group")
    fields = dict(changes)
    if "title" in fields:
        fields["title"] = _title(fields["title"])
    if "description" in fields:
        fields["description"] = _text(fields["description"], "description")
    if "priority" in fields:
        _choice(fields["priority"], PRIORITIES, "priority")
    if fields.get("group") is not None:
        rec.check_identity(fields["group"], "group")
    if fields.get("parent"):
        ws.refresh()
        fields["parent"] = _resolve(ws, fields["parent"], "parent task")
    return _change(ws, actor, token, "edit", version, fields)


def order(ws, actor: str, token: str, sort_order: int, version: int | None = None) -> dict:
    """Set a task's sort order (lower first)."""
    return _change(ws, actor, token, "order", version, {"sort_order": int(sort_order)})


def delete(ws, actor: str, token: str, version: int | None = None) -> dict:
    """Delete a task (a tombstone event: its history and comments stay stored)."""
    return _change(ws, actor, token, "delete", version, {})


def comment(ws, actor: str, token: str, content: str) -> dict:
    """Comment on a task (every role may)."""
    if not (content or "").strip():
        raise InvalidInput("the comment is empty; give the text with --content TEXT")
    _text(content, "comment")
    ws.refresh()
    task_id = _resolve(ws, token)

    def check(index) -> None:
        _role(ws, index, actor, "task.comment")
        _live(index, task_id)

    written = ws.write(actor, [("comment", {"task": task_id, "content": content})],
                       f"task: {actor} comments on {task_id}", check=check)
    record = written.records[0]
    return {"comment": {"id": record["id"], "task": task_id, "actor": actor,
                        "created_at": record["created_at"], "content": content},
            "warnings": written.warnings + _hooks(ws, [("on_update", record, "comment")])}


# -- reading -----------------------------------------------------------------

def listing(ws, statuses: list[str] | None = None, assigned: str | None = None,
            group: str | None = None, include_done: bool = False,
            limit: int | None = None) -> idx.TaskRows:
    """Live tasks by sort order then newest first; ``done`` only with ``include_done``
    or when asked for by status. A sequence of dicts (``list()`` it to keep them)."""
    statuses = [_choice(s, STATUSES, "status") for s in statuses or ()]
    if not statuses and not include_done:
        statuses = [s for s in STATUSES if s != "done"]
    if limit is not None and limit < 1:
        raise InvalidInput(f"--limit {limit} is not a positive number")
    ws.refresh()
    _known_group(ws, group)
    return idx.listing(ws.index.conn, statuses, assigned, group, limit=limit)


def _known_group(ws, group: str | None) -> None:
    if group is not None:
        from beadsmail import groups

        groups.require(ws.index.conn, group)


def show(ws, token: str) -> dict:
    """A task with its subtasks, comments (oldest first), history of moves and conflicts."""
    ws.refresh()
    task_id = _resolve(ws, token)
    conn = ws.index.conn
    task = idx.get(conn, task_id)
    if task is None:
        raise NotFound(f"task {task_id} does not exist; list tasks with 'bd task list --all'")
    history, comments_ = idx.history(conn, task_id), idx.comments(conn, task_id)
    _sign(conn, history, comments_)
    return {"task": task, "subtasks": list(idx.listing(conn, parent=task_id)),
            "comments": comments_, "history": history, "conflicts": idx.conflicts(conn, task_id)}


def _sign(conn, history: list[dict], comments_: list[dict]) -> None:
    """Each move and comment says who signed it (``signing.provenance``); the task's own
    ``verified`` (every record that shaped it) comes with its row (``index.tasks``)."""
    from beadsmail.index import feeds
    from beadsmail.signing import provenance_of

    found = feeds.signed(conn, [h["event"] for h in history] + [c["id"] for c in comments_])
    for entry, rid in [*((h, h["event"]) for h in history), *((c, c["id"]) for c in comments_)]:
        entry.update(provenance_of(*found.get(rid, (False, None, None))))


def comments(ws, token: str) -> list[dict]:
    ws.refresh()
    task_id = _resolve(ws, token)
    found = idx.comments(ws.index.conn, task_id)
    _sign(ws.index.conn, [], found)
    return found


def conflicts(ws, token: str | None = None) -> list[dict]:
    """Events that lost a version race (or came after a deletion), oldest first."""
    ws.refresh()
    return idx.conflicts(ws.index.conn, _resolve(ws, token) if token else None)


def review_count(ws, group: str | None = None) -> dict:
    ws.refresh()
    _known_group(ws, group)
    return {"review": idx.in_review(ws.index.conn, group), "group": group}


def board(ws, group: str | None = None, assigned: str | None = None, limit: int = 20) -> dict:
    """The five columns, each with its count and its first ``limit`` tasks."""
    if limit < 1:
        raise InvalidInput(f"--limit {limit} is not a positive number")
    ws.refresh()
    _known_group(ws, group)
    conn = ws.index.conn
    counts = idx.counts(conn, group, assigned)
    return {"group": group, "assigned": assigned, "columns": [
        {"status": s, "count": counts[s],
         "tasks": list(idx.listing(conn, [s], assigned, group, limit=limit))} for s in STATUSES]}
