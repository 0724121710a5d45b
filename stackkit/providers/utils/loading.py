"""Models that load in the background: the server is up (and healthy) at once, ``/v1/health`` names what
is still loading, and a request for a loading model waits for it (or gets its loading error)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from stackkit.errors import ProviderUnavailableError, StackkitError

T = TypeVar("T")
log = logging.getLogger("stackkit.loading")
# Held for the whole of a torch model load: two threads importing transformers at once can see a partly
# initialized module, and from_pretrained patches global torch state (meta-device initialization), so two
# loads in parallel threads corrupt each other ("Cannot copy out of meta tensor"). One load at a time.
MODEL_LOADS = threading.Lock()


class Loading(Generic[T]):
    """`load()` running in its own thread from creation on; ``await loading.get()`` for the result."""

    def __init__(self, what: str, load: Callable[[], T]) -> None:
        self.what = what
        self.started = time.monotonic()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"load-{what}")
        self._future = self._executor.submit(self._one_at_a_time, load)
        self._future.add_done_callback(self._report)
        self._executor.shutdown(wait=False)

    @staticmethod
    def _one_at_a_time(load: Callable[[], T]) -> T:
        with MODEL_LOADS:
            return load()

    def _report(self, future: concurrent.futures.Future[T]) -> None:
        if future.exception() is not None:
            log.error("could not load %s: %s", self.what, future.exception())
        else:
            log.info("%s loaded in %.1f s", self.what, time.monotonic() - self.started)

    @property
    def done(self) -> bool:
        return self._future.done()

    async def get(self) -> T:
        try:
            return await asyncio.shield(asyncio.wrap_future(self._future))
        except StackkitError:
            raise
        except Exception as exc:
            raise ProviderUnavailableError(f"{self.what} failed to load: {type(exc).__name__}: {exc}. Check "
                                           "the server log and the provider's config, then restart.") from exc

    def status(self) -> dict[str, Any]:
        if not self._future.done():
            return {"status": "Loading", "message": f"{self.what} is loading "
                                                    f"({time.monotonic() - self.started:.0f} s so far)"}
        exc = self._future.exception()
        if exc is not None:
            return {"status": "Error", "message": f"{self.what} failed to load: {exc}"}
        return {"status": "OK"}

    async def wait(self) -> None:
        """Until loading ends, however it ends (for shutdown and wait_ready)."""
        await asyncio.wait([asyncio.wrap_future(self._future)])
