"""A real stackkit server (uvicorn on 127.0.0.1, a free port) in a background thread.

For tests of apps built on stackkit: point the ``openai`` SDK at ``server.base_url``.
Start-up and shut-down are bounded by timeouts; the server never listens beyond loopback.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from stackkit.core.config import RunConfig, load_config
from stackkit.core.stack import Stack


class LiveServer:
    def __init__(self, config: RunConfig | str | os.PathLike[str], *, start_timeout_s: float = 20.0) -> None:
        self.config = config if isinstance(config, RunConfig) else load_config(config)
        self.start_timeout_s = start_timeout_s
        self.stack: Stack | None = None
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LiveServer:
        self._thread = threading.Thread(target=self._run, name="stackkit-live-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._error is not None:
                raise self._error
            if self._server is not None and self._server.started:
                self.port = self._server.servers[0].sockets[0].getsockname()[1]
                return self
            time.sleep(0.01)
        self.stop()
        raise TimeoutError(f"stackkit server did not start within {self.start_timeout_s} s")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc

    async def _serve(self) -> None:
        import uvicorn

        from stackkit.core.server import create_app

        self.loop = asyncio.get_running_loop()
        self.stack = await Stack.create(self.config)
        try:
            config = uvicorn.Config(create_app(self.stack), host="127.0.0.1", port=0, loop="none",
                                    lifespan="off", log_level="warning", access_log=False,
                                    timeout_graceful_shutdown=5)
            self._server = uvicorn.Server(config)
            self.stack.start()
            await self._server.serve()
        finally:
            await self.stack.shutdown()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
