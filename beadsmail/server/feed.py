"""The server's one workspace, owned by one thread, and the feed of new records.

Every store operation of the server (each HTTP request, each WebSocket frame,
each poll) runs on a single worker thread that owns the ``Workspace`` and its
SQLite connection, so domain functions run exactly as they do in a CLI process:
they refresh, take the store lock, write and fold. The store lock serialises
this thread with ``bd`` processes in every worktree.

Records enter the index in one place, ``Index.ingest``; the server's index
subclass reports every record it folds, whoever caused the fold (a domain
function's own ``refresh()``, a write, or the poller), to ``on_records``, which
runs on the event loop. The poller reads the store heads (a few small ref
files, no dulwich) every ``interval`` seconds and folds only when they moved,
so records written by CLI processes in any worktree, or fetched by ``git fetch``
and ``bd sync``, reach connected clients within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from beadsmail.index import Index
from beadsmail.workspace import Workspace


class _ReportingIndex(Index):
    """An index that reports the records it folds (after inserting them)."""

    report: Callable[[list[dict]], None] = staticmethod(lambda records: None)

    def ingest(self, items):  # type: ignore[override]
        new = super().ingest(items)
        if new:
            self.report(new)
        return new


class ServerWorkspace(Workspace):
    """A workspace whose index reports every record it folds."""

    report: Callable[[list[dict]], None] = staticmethod(lambda records: None)

    @property
    def index(self) -> Index:
        if self._index is None:
            self.loc.state_dir.mkdir(parents=True, exist_ok=True)
            index = _ReportingIndex(self.index_path)
            index.report = self._report
            self._index = index
        return self._index

    def _report(self, records: list[dict]) -> None:
        self.report(records)


class Feed:
    """Run store work on the store thread; publish folded records on the event loop."""

    def __init__(self, ws: Workspace, on_records: Callable[[list[dict]], None],
                 interval: float = 0.05) -> None:
        self.ws = ServerWorkspace(ws.loc, ws.config)
        self.on_records = on_records
        self.interval = interval
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bd-store")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heads: dict[str, str] | None = None
        self._task: asyncio.Task | None = None
        self.ws.report = self._reported

    def _reported(self, records: list[dict]) -> None:  # on the store thread
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.on_records, list(records))

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(ws, *args, **kwargs)`` on the store thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, self.ws, *args,
                                                                        **kwargs))

    async def start(self) -> None:
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
                print(f"warning: refresh failed: {exc}", flush=True)
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
        await self.call(lambda ws: ws.close())
        self._pool.shutdown(wait=True)
