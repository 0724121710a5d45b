"""inline::llama-cpp — GGUF models on the CPU at llama.cpp's speed (llama-cpp-python), several requests
decoded together in one context (engine.py).

Chat (the model's own chat template, from the GGUF; tools through it, or the documented fallback prompt for
templates that render none), completions, streaming, stop strings, seed, temperature, top_p, max_tokens and
usage. ``response_format`` json_schema / json_object and forced tool calls (``tool_choice`` required or a
named tool) are enforced with a GBNF grammar made from the JSON schema (llama.cpp's own converter), one per
sequence. The model loads in the background; the server is healthy at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

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
from stackkit.errors import ConfigError, InvalidRequestError, MissingPackageError
from stackkit.providers.inline.llama_cpp.engine import LlamaEngine, Sequence
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


class LlamaCppConfig(ProviderConfigBase):
    model: str = Field(default="smollm2-135m-instruct", description="a .gguf file or a packaged model name")
    model_id: str | None = Field(default=None, description="the id it is served as (default: from the file)")
    n_ctx: int = Field(default=2048, ge=64, description="context length of each sequence")
    max_sequences: int = Field(default=8, ge=1, le=64, description="requests decoded together")
    n_batch: int = Field(default=512, ge=8, description="tokens per llama_decode (prompts are fed in pieces)")
    n_threads: int | None = Field(default=None, ge=1, description="CPU threads (default: every core)")
    default_max_tokens: int = Field(default=512, ge=1)
    weights: Literal["auto", "as-stored", "bf16", "f16"] = Field(
        default="auto",
        description="as-stored keeps the GGUF's quantized weights (least memory; fastest for one request at a "
                    "time); bf16 or f16 converts them once, losslessly for a 4-bit model, to 16-bit floats that "
                    "llama.cpp multiplies as matrices with unquantized activations: several requests decoded "
                    "together run several times faster, and answers match the full-precision model's. auto: "
                    "16-bit for GGUF files under 600 MB (bf16 where the CPU multiplies it natively, else f16), "
                    "as-stored for larger ones")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"model": "${env.LOCAL_MODEL:=smollm2-135m-instruct}"}


class _Template:
    """The GGUF's chat template, rendered as transformers renders one (the shape render_prompt expects)."""

    def __init__(self, engine: LlamaEngine) -> None:
        self.chat_template = engine.chat_template
        self.engine = engine

    def apply_chat_template(self, messages: list[dict[str, Any]], tools: Any = None, add_generation_prompt: bool = True,
                            tokenize: bool = False) -> str:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        assert self.chat_template is not None
        formatter = Jinja2ChatFormatter(self.chat_template, eos_token=self.engine.eos, bos_token=self.engine.bos,
                                        add_generation_prompt=add_generation_prompt)
        return str(formatter(messages=messages, tools=tools).prompt)  # type: ignore[arg-type]


def _load(config: LlamaCppConfig) -> LlamaEngine:
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise MissingPackageError("llama_cpp", "llama-cpp") from exc
    source = resolve(config.model)
    if source.gguf_file is None:
        raise ConfigError(f"inline::llama-cpp loads GGUF files; {config.model!r} is not one. Point model at a "
                          ".gguf file or a packaged model name, or serve it with inline::transformers (in the "
                          "starter: list inline::transformers first in the local provider's provider_type).")
    path = os.path.join(source.directory, source.gguf_file)
    weights = _weights(config.weights, path)
    if weights != "as-stored":
        assert source.converted is not None
        path = _converted(path, source.converted.with_name(f"{source.converted.name}-{weights}.gguf"), weights)
    threads = config.n_threads or os.cpu_count() or 1
    return LlamaEngine(path, config.n_ctx, config.max_sequences, config.n_batch, threads)


SMALL_GGUF_BYTES = 600_000_000  # about 1B parameters at 4 bits: 16-bit weights then cost at most ~2.5 GB


def _weights(wanted: str, path: str) -> str:
    if wanted != "auto":
        return wanted
    if os.path.getsize(path) > SMALL_GGUF_BYTES:
        return "as-stored"
    return "bf16" if _cpu_has_bf16() else "f16"


def _cpu_has_bf16() -> bool:
    """Whether the CPU multiplies bf16 natively (x86 AVX512-BF16, Arm's BF16 extension), as Linux reports it."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "bf16"})


def _converted(path: str, target: Path, weights: str) -> str:
    """The GGUF re-written with 16-bit float weights, once (llama.cpp's own quantize tool, about a second for a
    135M model); written under a temporary name and renamed, so an interrupted conversion is redone."""
    import ctypes

    import llama_cpp as lib

    if target.exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    params = lib.llama_model_quantize_default_params()
    params.ftype = lib.LLAMA_FTYPE_MOSTLY_BF16 if weights == "bf16" else lib.LLAMA_FTYPE_MOSTLY_F16
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    if lib.llama_model_quantize(path.encode(), str(part).encode(), ctypes.byref(params)) != 0:
        raise ConfigError(f"llama.cpp could not convert {path} to {weights}; set weights: as-stored.")
    os.replace(part, target)
    return str(target)


class LlamaCppInference(LocalModel[LlamaEngine]):
    """A GGUF model served by llama.cpp with several requests decoded together."""

    provider_type = "inline::llama-cpp"

    def __init__(self, config: LlamaCppConfig) -> None:
        super().__init__(config.model, config.model_id or default_model_id(config.model), lambda: _load(config))
        self.config = config

    async def list_provider_models(self) -> list[ProviderModel]:
        await self.loading.get()
        return [ProviderModel(provider_model_id=self.model_id,
                              metadata={"context_length": self.config.n_ctx, "source": self.config.model,
                                        "engine": "llama.cpp", "weights": self.config.weights})]

    def _stop(self, engine: LlamaEngine) -> None:
        engine.stop()

    def _start(self, engine: LlamaEngine, prompt: list[int], request: ChatCompletionRequest | CompletionRequest,
               stops: list[str], grammar: str | None = None, reserve: int = 0, choice: int = 0) -> _Text:
        """Submit one sequence (choice `choice` of n: its seed is the request's plus `choice`)."""
        check_sampling(request, "inline::llama-cpp", constrains=True, choices=True)
        budget = token_budget(request, len(prompt), self.config.n_ctx, self.config.default_max_tokens,
                              ", or raise n_ctx")
        sequence = Sequence(prompt=prompt, max_tokens=budget, grammar=grammar, reserve=reserve,
                            temperature=1.0 if request.temperature is None else request.temperature,
                            top_p=1.0 if request.top_p is None else request.top_p,
                            seed=None if request.seed is None else request.seed + choice)
        engine.submit(sequence)
        return _Text(sequence, stops)

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        self._check_model(request.model)
        engine = await self.loading.get()
        request = await chosen_tool_use(_Template(engine), request, self.chat_completion)
        prompt = engine.tokenize(render_prompt(_Template(engine), request), chat=True)
        budget = token_budget(request, len(prompt), self.config.n_ctx, self.config.default_max_tokens)
        schema = request_schema(request, budget)
        grammar = None if schema is None else await asyncio.to_thread(_gbnf, engine, schema, schema_param(request))
        reserve = closing_reserve(budget, schema)
        gens: list[TextGeneration] = [self._start(engine, prompt, request, request.stop_list(), grammar, reserve, i)
                                      for i in range(request.n or 1)]
        return chat_choice_chunks(gens, request) if request.stream else await chat_choices(gens, request)

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        self._check_model(request.model)
        if not isinstance(request.prompt, str):
            raise InvalidRequestError("inline::llama-cpp takes one string prompt; send `prompt` as a string.",
                                      param="prompt")
        engine = await self.loading.get()
        gen = self._start(engine, engine.tokenize(request.prompt, chat=False), request, stops_of(request.stop))
        return completion_chunks(gen, request) if request.stream else await completion_response(gen, request)

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise InvalidRequestError("inline::llama-cpp serves chat models; serve embedding models with "
                                  "inline::sentence-transformers.", param="model")


_RANGE_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
MAX_ENUMERATED = 2048


def bounded(schema: Any, param: str) -> Any:
    """`schema` with bounded numbers written as the integers they allow: llama.cpp's Python JSON-schema
    converter ignores minimum/maximum, and an enum is what its grammar can enforce. A bounded `number`
    becomes the integers within its bounds (valid answers, if not every valid answer); bounds it cannot
    turn into a short list are a 400, never silently not enforced."""
    if isinstance(schema, list):
        return [bounded(s, param) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bounded(v, param) if isinstance(v, dict | list) and k != "enum" and k != "const" else v
           for k, v in schema.items()}
    if not any(k in schema for k in _RANGE_KEYS) or schema.get("type") not in ("integer", "number"):
        return out
    lows = [math.ceil(schema[k]) for k in ("minimum",) if k in schema] + \
        [math.floor(schema[k]) + 1 for k in ("exclusiveMinimum",) if k in schema]
    highs = [math.floor(schema[k]) for k in ("maximum",) if k in schema] + \
        [math.ceil(schema[k]) - 1 for k in ("exclusiveMaximum",) if k in schema]
    low, high = (max(lows), min(highs)) if lows and highs else (0, -1)
    if not (lows and highs) or high - low >= MAX_ENUMERATED or high < low:
        raise InvalidRequestError(f"inline::llama-cpp can enforce a number's minimum/maximum only as a list of at "
                                  f"most {MAX_ENUMERATED} integers with both bounds set; set both bounds, or use "
                                  "inline::transformers (llguidance), which enforces any range.", param=param)
    for key in (*_RANGE_KEYS, "type"):
        out.pop(key, None)
    out["enum"] = list(range(low, high + 1))
    return out


def _gbnf(engine: LlamaEngine, schema: dict[str, Any], param: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    schema = bounded(schema, param)
    try:
        grammar = str(json_schema_to_gbnf(json.dumps(schema)))
    except Exception as exc:  # noqa: BLE001 - llama.cpp's converter raises plain exceptions for what it cannot do
        raise InvalidRequestError(f"the JSON schema cannot be enforced by llama.cpp's grammar: {exc}; remove what "
                                  "it cannot express, or use inline::transformers (llguidance).", param=param) from None
    if not engine.parses(grammar):  # the converter can emit what llama.cpp then rejects, e.g. for $defs names
        raise InvalidRequestError("llama.cpp rejected the grammar made from this JSON schema; rename $defs entries "
                                  "that share a name with a JSON type (value, string, number, ...), or use "
                                  "inline::transformers (llguidance).", param=param)
    return grammar


class _Text:
    """A sequence's text with stop strings applied (the TextGeneration local_chat assembles answers from)."""

    def __init__(self, sequence: Sequence, stops: list[str]) -> None:
        self.sequence = sequence
        self.prompt_tokens = len(sequence.prompt)
        self.stops = stops
        self.stopped_by_string = False

    @property
    def finish_reason(self) -> str:
        return "stop" if self.stopped_by_string else self.sequence.finish_reason

    @property
    def completion_tokens(self) -> int:
        return self.sequence.generated

    async def close(self) -> None:
        self.sequence.cancelled = True

    async def text(self) -> str:
        return "".join([piece async for piece in self.pieces()])

    async def pieces(self) -> AsyncIterator[str]:
        texts = self.sequence.texts()
        try:
            async for piece in until_stop(texts, self.stops, self._stopped):
                yield piece
        finally:
            await texts.aclose()

    def _stopped(self) -> None:
        self.stopped_by_string = True


async def create(config: LlamaCppConfig, deps: dict[Api, Any]) -> LlamaCppInference:
    check_model_path("inline::llama-cpp", config.model, "a .gguf file")
    return LlamaCppInference(config)  # loads in the background
