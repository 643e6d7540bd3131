"""The HTTP JSON API: what the CLI does, one route per command, described by ``ROUTES``.

Each route names its parameters and request body (JSON Schema), which
``openapi`` turns into the document served at ``/openapi.json`` and which the
server checks before calling the domain, so the description and the behaviour
cannot drift apart. Handlers run on the store thread as ``fn(ws, me, params,
body)`` and call one domain function each (``mail``, ``channels``, ``agents``,
``tasks``), exactly like the CLI commands. Domain errors map to 4xx with the
CLI's JSON error object; store failures to 503.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beadsmail import agents, channels, mail, reservations, search, status, tasks
from beadsmail.errors import InvalidInput

STATUS_CODES = {"invalid_input": 400, "ambiguous": 400, "usage": 400, "permission_denied": 403,
                "not_found": 404, "misaddressed": 422, "timeout": 408, "conflict": 409, "too_large": 413,
                "not_a_repository": 503, "store_error": 503, "remote_error": 502}

ID = {"type": "string", "minLength": 1, "maxLength": 100}
NAME = {"type": "string", "minLength": 1, "maxLength": 64}
TEXT = {"type": "string"}
TARGETS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                           "minItems": 1}]}
PRIORITY = {"type": "integer", "minimum": 0, "maximum": 4}
MTYPE = {"type": "string", "enum": list(mail.TYPES)}
ACTION = {"type": "string", "enum": list(mail.ACTIONS)}
STATUS = {"type": "string", "enum": list(tasks.STATUSES)}
TPRIORITY = {"type": "string", "enum": list(tasks.PRIORITIES)}
VERSION = {"type": "integer", "minimum": 1}


def body(required: list[str], **props: dict) -> dict:
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


@dataclass
class Param:
    name: str
    where: str = "query"            # query | path
    schema: dict = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    description: str = ""


@dataclass
class Route:
    method: str
    path: str
    op: str
    summary: str
    fn: Callable[[Any, str, dict, Any], Any]
    params: list[Param] = field(default_factory=list)
    body: dict | None = None
    tag: str = "mail"
    writes: bool = False


def _opt(d: dict, key: str, to: str | None = None) -> dict:
    return {to or key: d[key]} if key in d else {}


def _send(ws, me, p, b):
    to = [b["to"]] if isinstance(b["to"], str) else b["to"]
    options = {**_opt(b, "type", "type_"), **_opt(b, "priority"), **_opt(b, "urgent"),
               **_opt(b, "ephemeral"), **_opt(b, "context"), **_opt(b, "metadata"),
               **_opt(b, "action_requested", "action"), **_opt(b, "reply_to"),
               **_opt(b, "replies_to", "reply_to"), **_opt(b, "strict")}
    subject = b.get("subject") or (b["body"].strip().splitlines() or [""])[0][:80]
    return mail.send(ws, me, to, subject, b["body"], **options)


def _reply(ws, me, p, b):
    options = {**_opt(b, "subject"), **_opt(b, "type", "type_"), **_opt(b, "priority"),
               **_opt(b, "urgent"), **_opt(b, "strict")}
    return mail.reply(ws, me, p["id"], b["body"], **options)


def _inbox(ws, me, p, b):
    return mail.inbox(ws, p.get("agent") or me, sender=p.get("from"), priority=p.get("priority"),
                      type_=p.get("type"), unread=p.get("unread", False), limit=p.get("limit"),
                      group=p.get("group"))


def _ack(ws, me, p, b):
    return mail.ack(ws, me, b.get("ids", []), all_=b.get("all", False))


def _create_task(ws, me, p, b):
    return tasks.create(ws, me, b["title"], b.get("description", ""),
                        **_opt(b, "priority"), **_opt(b, "assign"), **_opt(b, "parent"),
                        **_opt(b, "status"), **_opt(b, "group"))


def _task_list(ws, me, p, b):
    statuses = [p["status"]] if p.get("status") else None
    return list(tasks.listing(ws, statuses, p.get("assigned"), p.get("group"),
                              include_done=p.get("all", False), limit=p.get("limit")))


def _post(ws, me, p, b):
    return channels.post(ws, me, p["name"], b["body"], b.get("subject"),
                         **_opt(b, "type", "type_"), **_opt(b, "priority"))


def _search(ws, me, p, b):
    kinds = tuple(p["kind"].split(",")) if p.get("kind") else tuple(search.KINDS)
    return search.search(ws, me, p["q"], kinds=kinds, sender=p.get("from"), to=p.get("to"),
                         channel=p.get("channel"), thread=p.get("thread"),
                         since=p.get("since"), limit=p.get("limit", 20))


def _reserve(ws, me, p, b):
    return reservations.reserve(ws, me, b["paths"], mode=b.get("mode", "exclusive"),
                                ttl=b.get("ttl"), reason=b.get("reason"), task=b.get("task"),
                                force=b.get("force", False))


PATHS = {"type": "array", "items": {"type": "string", "maxLength": 512}, "minItems": 1,
         "maxItems": 100}
P_ID = Param("id", "path", ID, True, "message id or unique prefix")
P_TASK = Param("id", "path", ID, True, "task id or unique prefix")
P_NAME = Param("name", "path", NAME, True, "channel name (without '#')")
P_LIMIT = Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 1000})
P_GROUP = Param("group", schema={"type": "string", "maxLength": 64},
                description="scope to this group (see docs/server.md); an unknown group is a 400")

ROUTES: list[Route] = [
    Route("POST", "/api/messages", "send", "Send a message (bd mail send)", _send, body=body(
        ["to", "body"], to=TARGETS, subject=TEXT, body=TEXT, type=MTYPE, priority=PRIORITY,
        urgent={"type": "boolean"}, ephemeral={"type": "boolean"},
        context={"anyOf": [{"type": "object"}, {"type": "array"}, {"type": "string"},
                           {"type": "null"}]},
        metadata={"type": "object"}, action_requested=ACTION, replies_to=ID,
        reply_to=ID, strict={"type": "boolean"}), writes=True),
    Route("GET", "/api/inbox", "inbox", "Open mail for an agent (bd mail inbox)", _inbox, [
        Param("agent", description="whose inbox (default: the caller)"),
        Param("from"), Param("priority", schema=PRIORITY), Param("type", schema=MTYPE),
        Param("unread", schema={"type": "boolean"}), P_LIMIT, P_GROUP]),
    Route("GET", "/api/messages/{id}", "show_message",
          "One message with its receipts, without marking it read (bd mail read --peek)",
          lambda ws, me, p, b: mail.read(ws, me, p["id"], peek=True), [P_ID]),
    Route("POST", "/api/messages/{id}/read", "read", "Read a message: records a read receipt "
          "(bd mail read)", lambda ws, me, p, b: mail.read(ws, me, p["id"]), [P_ID], writes=True),
    Route("POST", "/api/messages/{id}/ack", "ack_one", "Acknowledge one message (bd mail ack)",
          lambda ws, me, p, b: mail.ack(ws, me, [p["id"]]), [P_ID], writes=True),
    Route("POST", "/api/ack", "ack", "Acknowledge several messages, or all (bd mail ack)", _ack,
          body=body([], ids={"type": "array", "items": ID}, all={"type": "boolean"}), writes=True),
    Route("POST", "/api/messages/{id}/reply", "reply", "Reply to a message (bd mail reply)",
          _reply, [P_ID], body(["body"], body=TEXT, subject=TEXT, type=MTYPE, priority=PRIORITY,
                               urgent={"type": "boolean"}, strict={"type": "boolean"}),
          writes=True),
    Route("GET", "/api/messages/{id}/thread", "thread", "The whole conversation (bd show --thread)",
          lambda ws, me, p, b: mail.show(ws, p["id"], thread=True), [P_ID]),
    Route("GET", "/api/search", "search", "Full-text search of the mail, posts, tasks and "
          "comments the caller may read, best first (bd search; query syntax in docs/mail.md)",
          _search, [Param("q", schema={"type": "string", "maxLength": 500}, required=True,
                          description="the query"),
                    Param("kind", description="comma-separated: mail, task, comment"),
                    Param("from"), Param("to"), Param("channel"), Param("thread"),
                    Param("since", description="ISO time or an age: 90s, 15m, 2h, 7d"),
                    Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 200})]),
    Route("GET", "/api/reservations", "reservations", "Open file reservations, races lost "
          "across clones included (bd reservations)",
          lambda ws, me, p, b: reservations.listing(ws, me, mine=p.get("mine", False),
                                                    path=p.get("path")),
          [Param("mine", schema={"type": "boolean"}), Param("path")], tag="reservations"),
    Route("POST", "/api/reservations", "reserve", "Reserve paths or globs; 403 naming the "
          "holder when another agent holds one exclusively (bd reserve)", _reserve,
          body=body(["paths"], paths=PATHS, mode={"type": "string", "enum": ["exclusive", "shared"]},
                    ttl=TEXT, reason=TEXT, task=ID, force={"type": "boolean"}),
          tag="reservations", writes=True),
    Route("POST", "/api/reservations/release", "release", "Release my reservations "
          "(bd release)", lambda ws, me, p, b: reservations.release(
              ws, me, b.get("paths", []), all_=b.get("all", False)),
          body=body([], paths=PATHS, all={"type": "boolean"}), tag="reservations", writes=True),
    Route("GET", "/api/channels", "channels", "Channels with members and counts "
          "(bd channel list)", lambda ws, me, p, b: channels.list_channels(ws, p.get("group")),
          [P_GROUP], tag="channels"),
    Route("GET", "/api/channels/{name}", "channel_read", "A channel's newest messages "
          "(bd channel read)", lambda ws, me, p, b: channels.read(ws, p["name"],
                                                                  p.get("limit", 20),
                                                                  p.get("group")),
          [P_NAME, P_LIMIT, P_GROUP], tag="channels"),
    Route("POST", "/api/channels/{name}/messages", "channel_post", "Post to a channel "
          "(bd channel post)", _post, [P_NAME], body(["body"], body=TEXT, subject=TEXT,
                                                      type=MTYPE, priority=PRIORITY),
          tag="channels", writes=True),
    Route("POST", "/api/channels/{name}/join", "channel_join", "Join a channel (bd channel join)",
          lambda ws, me, p, b: channels.join(ws, me, p["name"]), [P_NAME], tag="channels",
          writes=True),
    Route("POST", "/api/channels/{name}/leave", "channel_leave", "Leave a channel "
          "(bd channel leave)", lambda ws, me, p, b: channels.leave(ws, me, p["name"]), [P_NAME],
          tag="channels", writes=True),
    Route("GET", "/api/agents", "agents", "Agents with liveness and unread counts "
          "(bd agent list)", lambda ws, me, p, b: agents.list_agents(ws, p.get("all", False),
                                                                     p.get("group")),
          [Param("all", schema={"type": "boolean"}), P_GROUP], tag="agents"),
    Route("GET", "/api/agents/{id}", "agent", "One agent (bd agent show)",
          lambda ws, me, p, b: agents.show(ws, p["id"]),
          [Param("id", "path", ID, True, "agent id")], tag="agents"),
    Route("GET", "/api/status", "status", "The coordination overview (bd status)",
          lambda ws, me, p, b: status.overview(ws, me), tag="agents"),
    Route("GET", "/api/tasks", "tasks", "Tasks (bd task list)", _task_list, [
        Param("status", schema=STATUS), Param("assigned"), P_GROUP,
        Param("all", schema={"type": "boolean"}, description="include done tasks"), P_LIMIT],
          tag="tasks"),
    Route("GET", "/api/board", "board", "The five columns (bd task board)",
          lambda ws, me, p, b: tasks.board(ws, p.get("group"), p.get("assigned"),
                                           p.get("limit", 50)),
          [P_GROUP, Param("assigned"), P_LIMIT], tag="tasks"),
    Route("POST", "/api/tasks", "task_create", "Create a task (bd task create)", _create_task,
          body=body(["title"], title=TEXT, description=TEXT, priority=TPRIORITY, assign=NAME,
                    parent=ID, status=STATUS, group=NAME), tag="tasks", writes=True),
    Route("GET", "/api/tasks/{id}", "task", "A task with comments and history (bd task show)",
          lambda ws, me, p, b: tasks.show(ws, p["id"]), [P_TASK], tag="tasks"),
    Route("POST", "/api/tasks/{id}/move", "task_move", "Move a task to a column, at the version "
          "you read; 409 when it moved meanwhile (bd task status)",
          lambda ws, me, p, b: tasks.move(ws, me, p["id"], b["status"], b["version"]), [P_TASK],
          body(["status", "version"], status=STATUS, version=VERSION), tag="tasks", writes=True),
    Route("POST", "/api/tasks/{id}/assign", "task_assign", "Assign a task (bd task assign)",
          lambda ws, me, p, b: tasks.assign(ws, me, p["id"], b["assignee"], b.get("version")),
          [P_TASK], body(["assignee"], assignee={"anyOf": [NAME, {"type": "null"}]},
                         version=VERSION), tag="tasks", writes=True),
    Route("POST", "/api/tasks/{id}/comments", "task_comment", "Comment on a task "
          "(bd task comment)", lambda ws, me, p, b: tasks.comment(ws, me, p["id"], b["content"]),
          [P_TASK], body(["content"], content=TEXT), tag="tasks", writes=True),
]


def parse_params(route: Route, path: dict, query) -> dict:
    """Path and query parameters, typed as the route declares; InvalidInput otherwise,
    and for a query parameter the route does not take (never silently ignored)."""
    takes = [p.name for p in route.params if p.where == "query"]
    unknown = sorted(set(query.keys()) - set(takes))
    if unknown:
        raise InvalidInput(f"{route.method} {route.path} does not take the query parameter "
                           f"{unknown[0][:40]!r}; it takes {', '.join(takes) or 'none'} "
                           "(see /openapi.json)")
    out: dict = {}
    for param in route.params:
        raw = path.get(param.name) if param.where == "path" else query.get(param.name)
        if raw is None or (raw == "" and param.where == "query"):
            if param.required:
                raise InvalidInput(f"missing parameter {param.name!r}")
            continue
        out[param.name] = _typed(param, raw)
    return out


def _typed(param: Param, raw: str) -> Any:
    schema = param.schema
    kind = schema.get("type")
    if kind == "integer":
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInput(f"parameter {param.name!r} must be a whole number, not "
                               f"{raw[:40]!r}") from None
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise InvalidInput(f"parameter {param.name!r} must be between {lo} and {hi}")
        return value
    if kind == "boolean":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise InvalidInput(f"parameter {param.name!r} must be true or false")
        return raw.lower() in ("true", "1")
    if "enum" in schema and raw not in schema["enum"]:
        raise InvalidInput(f"parameter {param.name!r} must be one of {', '.join(schema['enum'])}")
    if len(raw) > schema.get("maxLength", 1000):
        raise InvalidInput(f"parameter {param.name!r} is too long")
    return raw
