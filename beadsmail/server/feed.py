"""The server's one workspace, owned by one thread, and the feed of new records.

Every store operation of the server (each HTTP request, each WebSocket frame,
each poll) runs on a single worker thread that owns the ``Workspace`` and its
SQLite connection, so domain functions run exactly as they do in a CLI process:
they refresh, take the store lock, write and fold. The store lock serialises
this thread with ``bd`` processes in every worktree.

The index is shared by every process of the clone, so a record may be folded by
a CLI process rather than by the server; the server therefore follows the
index's arrival order (``Index.arrived_after``), not what its own folds return.
After every operation of the store thread, and whenever the poller sees the
store heads move (a few small ref-file reads, no dulwich, every ``interval``
seconds; it then refreshes the index), the records that arrived since the last
look are handed to ``on_records`` on the event loop. So records written by CLI
processes in any worktree, or fetched by ``git fetch`` and ``bd sync``, reach
connected clients within a fraction of a second, and the server's own writes
at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from beadsmail.workspace import Workspace

log = logging.getLogger("beadsmail.server")


class Feed:
    """Run store work on the store thread; publish arrived records on the event loop."""

    def __init__(self, ws: Workspace, on_records: Callable[[list[dict]], None],
                 interval: float = 0.05) -> None:
        self.ws = Workspace(ws.loc, ws.config)
        self.on_records = on_records
        self.interval = interval
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bd-store")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heads: dict[str, str] | None = None
        self._task: asyncio.Task | None = None
        self.position = 0

    def _run(self, fn: Callable[..., Any], args, kwargs) -> Any:  # on the store thread
        try:
            return fn(self.ws, *args, **kwargs)
        finally:
            if self._loop is not None:
                self._publish()

    def _publish(self) -> None:
        index = self.ws.index
        while True:
            arrived = index.arrived_after(self.position)
            if not arrived:
                return
            self.position = arrived[-1][0]
            self._loop.call_soon_threadsafe(self.on_records, [r for _, r in arrived])

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(ws, *args, **kwargs)`` on the store thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self._run, fn, args,
                                                                        kwargs))

    async def start(self, position: int) -> None:
        """Publish what arrives after ``position`` from now on, and start polling."""
        self.position = position
        self._loop = asyncio.get_running_loop()
        await self.call(lambda ws: ws.refresh())
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                heads = self.ws.heads()
                if heads != self._heads:
                    await self.call(self._refresh, heads)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken store must not stop the server
                log.warning("refresh failed: %s", exc)
                await asyncio.sleep(1)

    def _refresh(self, ws: Workspace, heads: dict[str, str]) -> None:
        ws.refresh()
        self._heads = heads

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._loop = None
        await self.call(lambda ws: ws.close())
        self._pool.shutdown(wait=True)
