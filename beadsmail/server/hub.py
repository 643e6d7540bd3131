"""The WebSocket hub: agents of a project send frames in, the stream goes out.

An agent connects to ``/ws/agent/messages/{project}?agent_id=A[&since=ID]``. Its
connection acts as ``A`` only (a frame naming another sender is refused) and
follows the server's stream (see ``stream``) from a starting position:

- ``since=ID``: just after the last message the client saw (a resume);
- otherwise just after the last message pushed to ``A`` before (what was queued
  for it while away);
- for an agent the server has never served: its open inbox first, then live.

A follower pushes, in stream order, each message that reaches ``A`` by the
same rule as ``bd mail inbox``: addressed to ``A``, or by someone else to ``*``,
``@A's group``, a channel ``A`` joined, or the project's channel ``#project``
(which the agent joins on connect). The first pushes are the queued ones; a
``ready`` frame marks the switch to live delivery. Each connection has its own
follower, so a slow client only slows itself.

Frames in are JSON objects. Message frames (``type`` one of the message types)
are committed as ``message`` records through the mail domain and answered with
``sent``; ``ack``/``read`` change receipts; ``ping`` is answered with ``pong``.
Malformed or unknown frames get an ``error`` frame and the connection stays;
frames beyond a token-bucket rate are refused with ``rate_limited`` and a client
that keeps flooding is closed (1008); oversize frames are closed by the
transport (1009). Observers (the web page) get every new record their caller may
read (``access.Reader.sees``): all of them without a token, a token's share with one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect

from beadsmail import agents, channels, records
from beadsmail.errors import BeadsError, InvalidInput, NotFound, PermissionDenied
from beadsmail.index import mail as mail_index
from beadsmail.server import bus, spec13
from beadsmail.server.access import Reader
from beadsmail.server.bus import error_frame
from beadsmail.server.feed import Feed
from beadsmail.server.security import Limits, Principal
from beadsmail.server.stream import Stream
from beadsmail.signing import provenance

log = logging.getLogger("beadsmail.server")

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_POLICY = 1008
REGISTRY_KINDS = {"agent", "membership", "channel"}
BATCH = 64  # message frames of one connection committed together at most


@dataclass(eq=False)
class Agent:
    ws: WebSocket
    agent: str
    project: str
    principal: Principal
    reach: set[str] = field(default_factory=set)
    stale: bool = False
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)
    refused: int = 0

    def allow(self, limits: Limits) -> bool:
        now = time.monotonic()
        self.tokens = min(limits.burst, self.tokens + (now - self.stamp) * limits.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refused += 1
        return False

    def wants(self, sender: str, targets: tuple[str, ...], _type: str = "") -> bool:
        if not targets:
            return False
        return self.agent in targets or (sender != self.agent and not self.reach.isdisjoint(targets))


class Hub:
    def __init__(self, feed: Feed, stream: Stream, projects: list[str], limits: Limits) -> None:
        self.feed = feed
        self.stream = stream
        self.projects = projects
        self.limits = limits
        self.agents: set[Agent] = set()
        self.observers: dict[asyncio.Queue, str] = {}

    # -- records in ------------------------------------------------------------

    def on_records(self, records: list[dict]) -> None:
        """Called on the event loop with every record the server's index folds."""
        kinds = {r["kind"] for r in records}
        gone = {t for r in records if r["kind"] == "tombstone" for t in [r["target"]]}
        gone |= {t for r in records if r["kind"] == "purge" for t in r["targets"]}
        if gone:
            self.stream.forget(gone)
        if kinds & REGISTRY_KINDS:
            for conn in self.agents:
                conn.stale = True
        self.stream.extend([r for r in records if r["kind"] == "message" and r["id"] not in gone])
        for queue in list(self.observers):
            for record in records:
                try:
                    queue.put_nowait(record)
                except asyncio.QueueFull:
                    self.observers.pop(queue, None)
                    break

    # -- agents ----------------------------------------------------------------

    def _reach(self, ws, agent: str, project: str) -> set[str]:
        """Targets that reach ``agent`` (store thread): joins the project channel first."""
        ws.refresh()
        try:
            channels.join(ws, agent, project)
        except BeadsError as exc:
            log.warning("%s could not join #%s: %s", agent, project, exc.message)
        with contextlib.suppress(BeadsError):  # a registered agent on the bus is alive
            agents.heartbeat(ws, agent)
        return set(mail_index.reach(ws.index.conn, agent)) | {"#" + project}

    def _opening(self, ws, agent: str) -> tuple[list[dict], int]:
        """A new agent's open inbox (before it joins the project channel), and the stream
        position it was taken at (store thread)."""
        ws.refresh()
        conn = ws.index.conn
        rows = mail_index.inbox(conn, agent, mail_index.reach(conn, agent))
        return [record for record, _state, _at in rows], len(self.stream.ids)

    async def start_position(self, agent: str, since: str | None) -> tuple[int, list[dict]]:
        """Where an agent's follower starts, and the messages to push before that."""
        if since:
            pos = self.stream.after(since)
            if pos is None:
                raise InvalidInput(f"since={since!r} is not a message this server has delivered; "
                                   "reconnect without 'since' to get what is queued for you")
            return pos, []
        cursor = self.stream.after(self.stream.cursors.get(agent, ""))
        if cursor is not None:
            return cursor, []
        opened, pos = await self.feed.call(self._opening, agent)
        opened.sort(key=lambda r: self.stream.pos.get(r["id"], len(self.stream.ids)))
        return pos, opened

    async def serve_agent(self, websocket: WebSocket, project: str, principal: Principal,
                          since: str | None) -> None:
        """Serve the connection of ``principal`` (the agent it acts as, holding a token or not)."""
        agent = principal.identity
        conn = Agent(websocket, agent, project, principal, tokens=float(self.limits.burst))
        try:
            start, opened = await self.start_position(agent, since)
        except BeadsError as exc:
            await websocket.send_json(error_frame(exc))
            await websocket.close(CLOSE_BAD_REQUEST, "unknown since id")
            return
        conn.reach = await self.feed.call(self._reach, agent, project)
        await websocket.send_json({"type": "welcome", "agent": agent, "project": project,
                                   "channel": "#" + project})
        self.agents.add(conn)
        follower = asyncio.create_task(self._follow(conn, start, opened))
        try:
            await self._receive(conn)
        finally:
            self.agents.discard(conn)
            follower.cancel()
            try:
                await follower
            except (asyncio.CancelledError, Exception):
                pass
            self.stream.save_cursors()

    async def _follow(self, conn: Agent, pos: int, opened: list[dict]) -> None:
        """Push the opening messages, then every stream entry from ``pos`` that is for me."""
        sent = set()
        for record in opened:
            await conn.ws.send_text(self._text(record, True, conn.project))
            if record["id"] in self.stream.pos:
                self.stream.delivered(conn.agent, record["id"])
            sent.add(record["id"])
        await self._delivered(conn, list(sent))
        live_from = len(self.stream.ids)
        queued = len(opened)
        ready = False
        while True:
            if pos >= len(self.stream.ids) and not ready:
                await conn.ws.send_json({"type": "ready", "queued": queued})
                ready = True
            await self.stream.wait_beyond(pos)
            if conn.stale:
                conn.stale = False
                conn.reach = await self.feed.call(self._reach, conn.agent, conn.project)
            end = len(self.stream.ids)
            wanted = [mid for mid in self.stream.ids[pos:end]
                      if mid not in sent and conn.wants(*self.stream.meta[mid])]
            pushed = []
            for record in await self._records(wanted):
                is_queued = not ready and self.stream.pos[record["id"]] < live_from
                queued += is_queued
                await conn.ws.send_text(self._text(record, is_queued, conn.project))
                self.stream.delivered(conn.agent, record["id"])
                pushed.append(record["id"])
            await self._delivered(conn, pushed)
            pos = end

    async def _delivered(self, conn: Agent, ids: list[str]) -> None:
        """Record the delivery of what was pushed (Spec 13's ``delivered_at``)."""
        if ids:
            try:
                await self.feed.call(spec13.mark_delivered, conn.agent, ids)
            except BeadsError as exc:
                log.warning("delivery receipts for %s not written: %s", conn.agent, exc.message)

    def _text(self, record: dict, queued: bool, project: str) -> str:
        """The message frame: beadsmail's ``message`` (serialised once per message however
        many receive it) with Spec 13's columns beside it (see ``spec13``)."""
        body = self.stream.texts.get(record["id"])
        if body is None:
            body = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            self.stream.texts[record["id"]] = body
        columns = spec13.columns_text(record, project, records.now_iso())
        return (f'{{"type":"message","queued":{"true" if queued else "false"},{columns},'
                f'"message":{body}}}')

    async def _records(self, ids: list[str]) -> list[dict]:
        cache = self.stream.cache
        missing = [i for i in ids if i not in cache]
        if missing:
            found = await self.feed.call(
                lambda ws: {i: mail_index.message(ws.index.conn, i) for i in missing})
            for record in found.values():
                if record is not None:
                    self.stream.remember(record)
        return [cache[i] for i in ids if i in cache]

    async def _receive(self, conn: Agent) -> None:
        """Read frames; refuse bad ones at once; hand good ones to the processor in order."""
        queue: asyncio.Queue = asyncio.Queue(self.limits.burst)
        processor = asyncio.create_task(self._process(conn, queue))
        try:
            while True:
                try:
                    event = await conn.ws.receive()
                except (WebSocketDisconnect, RuntimeError):
                    return
                if event["type"] == "websocket.disconnect":
                    return
                action, frame = self._admit(conn, event)
                if action == "close":
                    await conn.ws.close(CLOSE_POLICY, "flooding: too many frames")
                    return
                if action == "answer":
                    await conn.ws.send_json(frame)
                else:
                    await queue.put(frame)
        finally:
            await queue.put(None)  # frames already received are still carried out
            await processor

    def _admit(self, conn: Agent, event: dict) -> tuple[str, dict | None]:
        """("process", frame), ("answer", frame to send at once) or ("close", None)."""
        if not conn.allow(self.limits):
            if conn.refused > self.limits.max_refused:
                return "close", None
            return "answer", _rate_limited(self.limits)
        text = event.get("text")
        if text is None:
            return "answer", error_frame(InvalidInput("binary frames are not understood; send "
                                                      "JSON text frames"))
        ref = None
        try:
            frame = spec13.normalize(bus.parse(text, self.limits.max_frame,
                                               self.limits.max_depth))
            ref = frame.get("ref")
            frame["_kind"] = bus.kind_of(frame)
            if frame["_kind"] == "control" and frame["type"] == "ping":
                del frame["_kind"]
                return "answer", bus.control(None, conn.agent, frame)
            return "process", frame
        except BeadsError as exc:
            return "answer", error_frame(exc, ref)

    async def _process(self, conn: Agent, queue: asyncio.Queue) -> None:
        """Carry out frames: runs of message frames as one commit, control frames one by one."""
        done = False
        while not done:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < BATCH:
                batch.append(queue.get_nowait())
            if None in batch:
                done = True
                batch = batch[:batch.index(None)]
            while batch:
                kind = batch[0].pop("_kind")
                run = [batch.pop(0)]
                while kind == "message" and batch and batch[0].get("_kind") == "message":
                    batch[0].pop("_kind")
                    run.append(batch.pop(0))
                for answer in await self._carry_out(conn, kind, run):
                    with contextlib.suppress(Exception):
                        await conn.ws.send_json(answer)

    async def _carry_out(self, conn: Agent, kind: str, frames: list[dict]) -> list[dict]:
        try:
            return await self.feed.call(_carry_out, conn, kind, frames)
        except BeadsError as exc:
            return [error_frame(exc, frames[0].get("ref"))]
        except Exception as exc:  # never let one frame take the server down
            log.exception("frames from %s failed", conn.agent)
            return [error_frame(exc, f.get("ref")) for f in frames]

    # -- the page's message log -------------------------------------------------

    async def log(self, params: dict, reader: Reader) -> list[dict]:
        """The newest ``limit`` messages matching the filters that ``reader`` may read,
        oldest first."""
        ids, meta = self.stream.ids, self.stream.meta
        end = len(ids)
        if params.get("before"):
            found = self.stream.pos.get(params["before"])
            if found is None:
                raise NotFound(f"no message {params['before']!r} in the log; give a full id")
            end = found
        agent, channel, kind = params.get("agent"), params.get("channel"), params.get("type")
        group, groups = params.get("group"), self.stream.groups
        picked: list[str] = []
        for i in range(end - 1, -1, -1):
            sender, targets, type_ = meta[ids[i]]
            if not targets or (kind and type_ != kind) or \
                    (group and groups.get(ids[i]) != group) or \
                    not reader.may_read(sender, targets) or \
                    (channel and "#" + channel.lstrip("#") not in targets) or \
                    (agent and sender != agent and agent not in targets):
                continue
            picked.append(ids[i])
            if len(picked) >= params.get("limit", 100):
                break
        return [{**r, **provenance(r)} for r in await self._records(picked[::-1])]

    # -- observers (the web page) ----------------------------------------------

    async def serve_observer(self, websocket: WebSocket, project: str,
                             principal: Principal, group: str | None = None) -> None:
        """Push every new record ``principal`` may read to a page (see ``access``); with
        ``group``, of the messages only those its agents sent (as the log's ``?group=``)."""
        reader = await self.reader(principal)
        queue: asyncio.Queue = asyncio.Queue(self.limits.observer_queue)
        self.observers[queue] = project
        await websocket.send_json({"type": "welcome", "project": project, "observer": True})
        closed = asyncio.create_task(_until_closed(websocket))
        try:
            while not closed.done():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                record = getter.result()
                if principal.token and record.get("kind") in REGISTRY_KINDS:
                    reader = await self.reader(principal)  # joins and groups change the reach
                if reader.sees(record, self.stream.meta.get) and (
                        group is None or record.get("kind") != "message"
                        or records.sender_group(record) == group):
                    await websocket.send_json({"type": "record",
                                               "record": {**record, **provenance(record)}})
                if queue not in self.observers:  # overflowed: make the page reload
                    await websocket.close(1013, "too far behind; reload")
                    break
        finally:
            self.observers.pop(queue, None)
            closed.cancel()


    async def reader(self, principal: Principal) -> Reader:
        """What ``principal`` may read (built on the store thread for a token)."""
        if not principal.token:
            return Reader.of(None, principal)
        return await self.feed.call(Reader.of, principal)


def _carry_out(ws, conn: Agent, kind: str, frames: list[dict]) -> list[dict]:
    """Frames of one connection, checked against what its caller may read (store thread)."""
    reader = Reader.of(ws, conn.principal)
    if kind == "message":
        return bus.send_many(ws, conn.agent, conn.project, frames, reader)
    return [bus.control(ws, conn.agent, frames[0], reader)]


def _rate_limited(limits: Limits) -> dict:
    exc = PermissionDenied(f"rate limit exceeded ({limits.rate:g} frames/s, bursts of "
                           f"{limits.burst}); slow down: this frame was not processed")
    exc.code = "rate_limited"
    return error_frame(exc)


async def _until_closed(websocket: WebSocket) -> None:
    try:
        while True:
            event = await websocket.receive()
            if event["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
