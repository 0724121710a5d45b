"""What the local engines (inline::transformers, inline::llama-cpp) share: a worker thread that admits
queued requests and runs decode steps, the channel each request's output goes back on, and the provider
lifecycle around a model that loads in the background."""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import queue
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any, Generic, TypeVar

from stackkit.errors import ConfigError, InvalidRequestError, NotFoundError, StackkitError
from stackkit.providers.utils.loading import Loading

END = object()  # the last item of a request's channel
R = TypeVar("R")
E = TypeVar("E")


async def drain(out: asyncio.Queue[Any], on_exit: Callable[[], None]) -> AsyncGenerator[Any, None]:
    """A request's output as it comes (an exception on the channel is raised); `on_exit()` however the
    consumer stops, so a consumer that goes away cancels the request."""
    try:
        while True:
            item = await out.get()
            if item is END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        on_exit()


class WorkerLoop(abc.ABC, Generic[R]):
    """A daemon thread running `_admit()` and `_step()` while requests are active; an error fails the
    requests in flight (`_fail_all`) and the loop goes on serving."""

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.pending: queue.Queue[R] = queue.Queue()
        self.wake = threading.Event()
        self.stopping = False
        self.log = log
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def submit(self, request: R) -> None:
        self.pending.put(request)
        self.wake.set()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=30)

    @abc.abstractmethod
    def _busy(self) -> bool:
        """Whether requests are in flight."""

    @abc.abstractmethod
    def _admit(self) -> None:
        """Take queued requests into the running batch, as room allows."""

    @abc.abstractmethod
    def _step(self) -> None:
        """One decode step for the running batch."""

    @abc.abstractmethod
    def _fail_all(self, error: BaseException) -> None:
        """End every request in flight with `error`."""

    def _after_step(self) -> None:
        """Hand what the step produced to the callers (engines that batch their hand-offs)."""

    def _run(self) -> None:
        while not self.stopping:
            if not self._busy() and self.pending.empty():
                self.wake.wait(timeout=0.5)
                self.wake.clear()
                continue
            try:
                self._admit()
                if self._busy():
                    self._step()
            except Exception as exc:  # fail the requests in flight, keep serving
                self.log.exception("generation failed")
                self._fail_all(exc)
            self._after_step()
        self._fail_all(RuntimeError("the model is shutting down"))
        self._after_step()


class LocalModel(abc.ABC, Generic[E]):
    """A provider around one local model that loads in the background (the server is healthy at once,
    /v1/health says it is loading) and is served under one id."""

    provider_type = "inline::local"

    def __init__(self, model: str, model_id: str, load: Callable[[], E]) -> None:
        self.model = model
        self.model_id = model_id
        self.loading: Loading[E] = Loading(model_id, load)

    async def health(self) -> dict[str, Any]:
        return self.loading.status()

    async def shutdown(self) -> None:
        await self.loading.wait()
        if self.loading.done:
            try:
                engine = await self.loading.get()
            except StackkitError:
                return
            await asyncio.to_thread(self._stop, engine)

    @abc.abstractmethod
    def _stop(self, engine: E) -> None:
        """Stop the loaded engine (in a worker thread)."""

    def _check_model(self, model: str) -> None:
        if model not in (self.model_id, self.model):
            raise NotFoundError(f"{self.provider_type} serves '{self.model_id}', not '{model}'; use that id.",
                                code="model_not_found")


_CLOSING = {'"': 1, "}": 1, "]": 1, "{": -1, "[": -1, ",": -1}


def closing_scores(pieces: list[str]) -> list[float]:
    """How far each token's text goes toward ending a JSON document: closing quotes and brackets count up,
    opening brackets and commas (another item) down, and a text that ends in a bracket a half more (`"}`
    ends a string and an object; `}"` may only end a string). Used near the end of a constrained answer's
    budget."""
    return [sum(_CLOSING.get(c, 0) for c in piece) + (0.5 if piece.rstrip().endswith(("}", "]")) else 0)
            for piece in pieces]


def closing_reserve(budget: int) -> int:
    """The last tokens of a constrained answer's budget, in which the engine picks, among the tokens the
    grammar allows, the one that goes furthest toward ending the JSON (the model's choice among equals):
    a model still looping then ends with whole JSON, not with max_tokens in the middle of it."""
    return max(8, min(48, budget // 4))


def check_model_path(provider_type: str, model: str, kinds: str) -> None:
    """A model given as a path must exist (a packaged name or hub id is fetched later)."""
    path = os.path.expanduser(model)
    if (model.startswith((".", "/", "~")) or model.endswith(".gguf")) and not os.path.exists(path):
        raise ConfigError(f"{provider_type}: model {model!r} does not exist. Point its config's model "
                          f"(LOCAL_MODEL in the starter) at {kinds} or a packaged model name.")


def token_budget(request: Any, prompt_tokens: int, context: int | None, default_max: int, fix: str = "") -> int:
    """How many tokens a request may generate: what it asks (or `default_max`), within the room the prompt
    leaves in the context; a prompt that leaves none is a 400."""
    wanted = int(getattr(request, "max_completion_tokens", None) or request.max_tokens or default_max)
    if context is None:
        return wanted
    room = context - prompt_tokens
    if room <= 0:
        raise InvalidRequestError(f"The prompt is {prompt_tokens} tokens, over this model's context of {context} "
                                  f"tokens by {1 - room} (one token must be left to generate). Shorten the "
                                  f"messages{fix}.", param="messages", code="context_length_exceeded")
    return min(wanted, room)
