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


class JsonClosing:
    """Steers a constrained answer to the end of its JSON in the last tokens of its budget: each token's text
    is scored by how far it goes toward ending the document from where the output stands, inside a string
    or not (`outside`, `inside`: one score per token id). Closing a string or a bracket counts up; opening
    a bracket or another item (a comma) and whitespace count down; among the rest (what the grammar forces,
    such as a key), the longest text wins."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.outside = [self._lex(p, False)[0] for p in pieces]
        self.inside = [self._lex(p, True)[0] for p in pieces]

    @staticmethod
    def _lex(text: str, in_string: bool) -> tuple[float, bool]:
        score, escaped = 0.0, False
        for c in text:
            if in_string:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == '"':
                    in_string, score = False, score + 1
                else:
                    score += 0.01  # among tokens the grammar forces (a key), the longest
            elif c in "}]":
                score += 1
            elif c in "{[,":
                score -= 1
            elif c == '"':
                in_string = True
            elif c.isspace():
                score -= 0.5
            else:
                score += 0.01
        return score, in_string

    def state(self, tokens: list[int]) -> bool:
        """Whether the output made of `tokens` ends inside a string."""
        in_string = False
        for token in tokens:
            in_string = self.after(in_string, token)
        return in_string

    def after(self, in_string: bool, token: int) -> bool:
        """Whether the output is inside a string once `token` is added."""
        return self._lex(self.pieces[token], in_string)[1] if 0 <= token < len(self.pieces) else in_string


def closing_reserve(budget: int, schema: Any) -> int:
    """The last tokens of a constrained answer's budget, in which the engine picks, among the tokens the
    grammar allows, the one that goes furthest toward ending the JSON (the model's choice among equals):
    a model still looping then ends with whole JSON, not with max_tokens in the middle of it. Room for the
    closing brackets, and for each required property (its key may still have to be written); never more
    than half the budget, so the model writes its own answer first."""
    return min(budget // 2, max(8, min(48, budget // 4)) + 4 * _required(schema))


def _required(node: Any) -> int:
    if isinstance(node, list):
        return sum(_required(n) for n in node)
    if not isinstance(node, dict):
        return 0
    own = len(node["required"]) if isinstance(node.get("required"), list) else 0
    return own + sum(_required(v) for k, v in node.items() if k not in ("required", "enum", "const", "default"))


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
