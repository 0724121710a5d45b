"""The event loop behind the synchronous LibraryClient.

A call runs the loop on the calling thread (no hand-off to another thread: a few microseconds per call);
between calls, while the stack has work in flight (file ingestion, model listing, streams being closed),
a background thread runs the loop in short slices so that work goes on. Calls made from inside a
running event loop (a notebook, an async framework) run the loop on a helper thread instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
SLICE_S = 0.005


class LoopDriver:
    """One event loop, run by whoever needs it, never by two threads at once."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._pending = threading.Event()  # work is in flight between calls
        self._callers = 0  # calls waiting for the loop: the background slices give way to them
        self._closed = False
        self._helper: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread = threading.Thread(target=self._drive, name="stackkit-loop-driver", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to completion and return its result (Ctrl-C cancels it)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._run_here(coro)
        if self._helper is None:
            self._helper = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stackkit-call")
        return self._helper.submit(self._run_here, coro).result()

    def _run_here(self, coro: Coroutine[Any, Any, T]) -> T:
        self._callers += 1
        with self._lock:
            self._callers -= 1
            task = self.loop.create_task(coro)
            try:
                return self.loop.run_until_complete(task)
            except BaseException:
                # Ctrl-C (KeyboardInterrupt) leaves the loop with `task` mid-await: cancel it and let it
                # unwind now, so what it holds is released and a stream it was reading can be closed
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        self.loop.run_until_complete(task)
                raise
            finally:
                if self._in_flight():
                    self._pending.set()

    def schedule(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start `coro` on the loop without waiting for it (from any thread)."""
        if self.loop.is_closed():
            coro.close()
            return
        self.loop.call_soon_threadsafe(self.loop.create_task, coro)
        self._pending.set()

    def _in_flight(self) -> bool:
        return any(not task.done() for task in asyncio.all_tasks(self.loop))

    def _drive(self) -> None:
        while True:
            self._pending.wait()
            if self._closed:
                return
            if self._callers:  # a call is about to run the loop itself
                time.sleep(0.0005)
                continue
            with self._lock:
                if self._closed or self.loop.is_closed():
                    return
                self.loop.run_until_complete(asyncio.sleep(SLICE_S))
                if not self._in_flight() and not self.loop._ready:  # type: ignore[attr-defined]
                    self._pending.clear()

    def close(self) -> None:
        self._closed = True
        self._pending.set()
        self._thread.join(10)
        if not self.loop.is_closed():
            self.run(self.loop.shutdown_asyncgens())
            with self._lock:
                self.loop.close()
        if self._helper is not None:
            self._helper.shutdown(wait=True)
