"""inline::transformers — a local Hugging Face causal LM, on CPU or CUDA, with continuous batching.

Concurrent requests share decode steps (see engine.py). Chat uses the tokenizer's chat
template (with tools, where the template supports them); tool calls are parsed from the
output. Streaming, stop strings, seed, temperature, top_p, max_tokens and usage are supported.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from stackkit.apis.datatypes import Api, ProviderConfigBase
from stackkit.apis.inference import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ProviderModel,
)
from stackkit.errors import ConfigError, InvalidRequestError, MissingPackageError, NotFoundError
from stackkit.providers.utils.local_chat import (
    chat_chunks,
    chat_response,
    check_sampling,
    completion_chunks,
    completion_response,
    render_prompt,
    stops_of,
)

if TYPE_CHECKING:
    from stackkit.providers.inline.transformers.engine import Generation

log = logging.getLogger("stackkit.transformers")


class TransformersConfig(ProviderConfigBase):
    model: str = Field(description="a local model directory (or a hub id where the hub is reachable)")
    model_id: str | None = Field(default=None, description="the id it is served as (default: the directory name)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_batch_size: int = Field(default=8, ge=1, description="sequences decoded together")
    default_max_tokens: int = Field(default=512, ge=1)
    chat_template: str | None = Field(default=None, description="overrides the tokenizer's chat template")
    trust_remote_code: bool = False

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"model": "${env.TRANSFORMERS_MODEL:=}", "device": "${env.TRANSFORMERS_DEVICE:=auto}"}


def _load(config: TransformersConfig) -> tuple[Any, Any]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingPackageError(exc.name or "transformers", "transformers") from exc
    local = os.path.exists(config.model)
    if not local and (config.model.startswith((".", "/", "~")) or os.environ.get("HF_HUB_OFFLINE") == "1"):
        raise ConfigError(f"inline::transformers: model directory {config.model!r} does not exist. Point "
                          "TRANSFORMERS_MODEL (or config.model) at a local model saved with save_pretrained.")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
    started = time.perf_counter()
    print(f"stackkit: loading {config.model} on {device} ...", file=sys.stderr, flush=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype,
                                                     trust_remote_code=config.trust_remote_code)
    except OSError as exc:
        raise ConfigError(f"inline::transformers could not load {config.model!r}: {exc}; point `model` at a "
                          "model directory") from exc
    model = model.to(device).eval()  # type: ignore[arg-type]
    if config.chat_template:
        tokenizer.chat_template = config.chat_template
    params = sum(p.numel() for p in model.parameters())
    print(f"stackkit: loaded {config.model} ({params / 1e6:.1f}M parameters, {model.dtype}, {device}) in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return model, tokenizer


def _context_length(model: Any) -> int | None:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    return None


class TransformersInference:
    def __init__(self, config: TransformersConfig, model: Any, tokenizer: Any) -> None:
        from stackkit.providers.inline.transformers.engine import BatchEngine  # imports torch

        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = config.model_id or os.path.basename(os.path.normpath(config.model))
        self.context_length = _context_length(model)
        self.engine = BatchEngine(model, config.max_batch_size)
        eos = {tokenizer.eos_token_id, *_as_list(getattr(model.generation_config, "eos_token_id", None))}
        self.stop_ids = frozenset(i for i in eos if isinstance(i, int))

    async def list_provider_models(self) -> list[ProviderModel]:
        return [ProviderModel(provider_model_id=self.model_id,
                              metadata={"context_length": self.context_length, "source": self.config.model})]

    async def shutdown(self) -> None:
        await asyncio.to_thread(self.engine.stop)

    def _check_model(self, model: str) -> None:
        if model not in (self.model_id, self.config.model):
            raise NotFoundError(f"inline::transformers serves '{self.model_id}', not '{model}'; use that id.",
                                code="model_not_found")

    def _start(self, prompt_ids: list[int], request: ChatCompletionRequest | CompletionRequest,
               stops: list[str]) -> _TextStream:
        from stackkit.providers.inline.transformers.engine import Generation

        check_sampling(request, "inline::transformers")
        wanted = getattr(request, "max_completion_tokens", None) or request.max_tokens or self.config.default_max_tokens
        if self.context_length is not None:
            room = self.context_length - len(prompt_ids)
            if room <= 0:
                raise InvalidRequestError(
                    f"The prompt is {len(prompt_ids)} tokens, over this model's context of {self.context_length} "
                    f"tokens by {1 - room} (one token must be left to generate). Shorten the messages.",
                    param="messages", code="context_length_exceeded")
            wanted = min(wanted, room)
        generation = Generation(prompt_ids=prompt_ids, max_new_tokens=wanted, stop_token_ids=self.stop_ids,
                                temperature=1.0 if request.temperature is None else request.temperature,
                                top_p=1.0 if request.top_p is None else request.top_p, seed=request.seed)
        self.engine.submit(generation)
        return _TextStream(self.tokenizer, generation, stops)

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        self._check_model(request.model)
        prompt = render_prompt(self.tokenizer, request)
        ids: list[int] = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        gen = self._start(ids, request, request.stop_list())
        return chat_chunks(gen, request) if request.stream else await chat_response(gen, request)

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        self._check_model(request.model)
        if not isinstance(request.prompt, str):
            raise InvalidRequestError("inline::transformers takes one string prompt; send `prompt` as a "
                                      "string.", param="prompt")
        ids: list[int] = self.tokenizer(request.prompt)["input_ids"]
        gen = self._start(ids, request, stops_of(request.stop))
        return completion_chunks(gen, request) if request.stream else await completion_response(gen, request)

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise InvalidRequestError("inline::transformers serves causal LMs; serve embedding models with "
                                  "inline::sentence-transformers.", param="model")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class _TextStream:
    """A generation's tokens decoded into text pieces, with stop strings applied as it goes."""

    def __init__(self, tokenizer: Any, generation: Generation, stops: list[str]) -> None:
        self.tokenizer = tokenizer
        self.generation = generation
        self.prompt_tokens = len(generation.prompt_ids)
        self.stops = stops
        self.tokens: list[int] = []
        self.stopped_by_string = False

    @property
    def finish_reason(self) -> str:
        return "stop" if self.stopped_by_string else self.generation.finish_reason

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)

    async def close(self) -> None:
        self.generation.cancelled = True

    async def text(self) -> str:
        """The whole output; without stop strings it is decoded once, at the end."""
        if self.stops:
            return "".join([piece async for piece in self.pieces()])
        tokens = self.generation.tokens()
        try:
            self.tokens = [token async for token in tokens]
        finally:
            await tokens.aclose()
        return str(self.tokenizer.decode(self.tokens, skip_special_tokens=True))

    async def pieces(self) -> AsyncIterator[str]:
        """Text as it is generated, decoded incrementally (a window of recent tokens, not the whole output)."""
        text = ""  # everything decoded so far that may be sent
        sent = 0
        hold = max((len(s) for s in self.stops), default=1) - 1  # text that may still become a stop string
        prefix, read = 0, 0  # tokens[prefix:read] were decoded last time, to give later tokens their context
        tokens = self.generation.tokens()
        try:
            async for token in tokens:
                self.tokens.append(token)
                before = self.tokenizer.decode(self.tokens[prefix:read], skip_special_tokens=True)
                after = self.tokenizer.decode(self.tokens[prefix:], skip_special_tokens=True)
                if len(after) <= len(before) or after.endswith("\ufffd"):
                    continue  # half a character so far
                text += after[len(before):]
                prefix, read = read, len(self.tokens)
                cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
                if cut >= 0:
                    self.stopped_by_string = True
                    if cut > sent:
                        yield text[sent:cut]
                    return
                if len(text) - hold > sent:
                    yield text[sent:len(text) - hold]
                    sent = len(text) - hold
            if len(text) > sent:
                yield text[sent:]
        finally:
            await tokens.aclose()


async def create(config: TransformersConfig, deps: dict[Api, Any]) -> TransformersInference:
    model, tokenizer = await asyncio.to_thread(_load, config)
    return TransformersInference(config, model, tokenizer)
