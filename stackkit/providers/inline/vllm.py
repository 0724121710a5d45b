"""inline::vllm — vLLM's async engine in-process (needs CUDA; import-guarded).

Written against vLLM's V1 engine (``vllm.v1.engine.async_llm.AsyncLLM`` with DELTA outputs):
vLLM does its own continuous batching and paged attention. Chat uses the model's chat template,
tool calls are parsed as for inline::transformers. Not exercised here without a GPU: its tests
skip unless CUDA and vllm are present.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

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
from stackkit.errors import InvalidRequestError, MissingPackageError, NotFoundError
from stackkit.providers.utils.local_chat import (
    chat_chunks,
    chat_response,
    check_sampling,
    completion_chunks,
    completion_response,
    render_prompt,
    stops_of,
)

FINISH = {"stop": "stop", "length": "length", "abort": "stop"}


class VLLMEngineConfig(ProviderConfigBase):
    model: str = Field(description="a local model directory or hub id")
    model_id: str | None = None
    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    tensor_parallel_size: int = Field(default=1, ge=1)
    default_max_tokens: int = Field(default=512, ge=1)

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"model": "${env.VLLM_MODEL:=}"}


class _VLLMGeneration:
    """vLLM's DELTA outputs as a TextGeneration (text pieces, finish reason, token counts)."""

    def __init__(self, outputs: AsyncIterator[Any], prompt_tokens: int, engine: Any, request_id: str) -> None:
        self.outputs, self.engine, self.request_id = outputs, engine, request_id
        self.prompt_tokens = prompt_tokens
        self._finish = "length"
        self._completion_tokens = 0

    @property
    def finish_reason(self) -> str:
        return self._finish

    @property
    def completion_tokens(self) -> int:
        return self._completion_tokens

    async def text(self) -> str:
        return "".join([piece async for piece in self.pieces()])

    async def close(self) -> None:
        await self.engine.abort(self.request_id)  # a no-op for a request vLLM already finished

    async def pieces(self) -> AsyncIterator[str]:
        finished = False
        try:
            async for output in self.outputs:
                completion = output.outputs[0]
                self._completion_tokens += len(completion.token_ids)
                if completion.text:
                    yield completion.text
                if output.finished:
                    finished = True
                    self._finish = FINISH.get(completion.finish_reason or "stop", "stop")
        finally:
            if not finished:
                await self.engine.abort(self.request_id)


class VLLMInference:
    def __init__(self, config: VLLMEngineConfig, engine: Any, tokenizer: Any) -> None:
        self.config, self.engine, self.tokenizer = config, engine, tokenizer
        self.model_id = config.model_id or config.model.rstrip("/").rsplit("/", 1)[-1]

    async def list_provider_models(self) -> list[ProviderModel]:
        return [ProviderModel(provider_model_id=self.model_id)]

    async def shutdown(self) -> None:
        self.engine.shutdown()

    def _generate(self, prompt: str, request: ChatCompletionRequest | CompletionRequest, stops: list[str]
                  ) -> _VLLMGeneration:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        if request.model not in (self.model_id, self.config.model):
            raise NotFoundError(f"inline::vllm serves '{self.model_id}', not '{request.model}'; use that id.",
                                code="model_not_found")
        check_sampling(request, "inline::vllm")
        params = SamplingParams(
            max_tokens=getattr(request, "max_completion_tokens", None) or request.max_tokens
            or self.config.default_max_tokens,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p, seed=request.seed, stop=stops or None,
            presence_penalty=request.presence_penalty or 0.0, frequency_penalty=request.frequency_penalty or 0.0,
            output_kind=RequestOutputKind.DELTA)
        prompt_tokens = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        request_id = uuid.uuid4().hex
        outputs = self.engine.generate(prompt=prompt, sampling_params=params, request_id=request_id)
        return _VLLMGeneration(outputs, prompt_tokens, self.engine, request_id)

    async def chat_completion(
        self, request: ChatCompletionRequest
    ) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
        gen = self._generate(render_prompt(self.tokenizer, request), request, request.stop_list())
        return chat_chunks(gen, request) if request.stream else await chat_response(gen, request)

    async def completion(self, request: CompletionRequest) -> Completion | AsyncIterator[Completion]:
        if not isinstance(request.prompt, str):
            raise InvalidRequestError("inline::vllm takes one string prompt; send `prompt` as a string.",
                                      param="prompt")
        gen = self._generate(request.prompt, request, stops_of(request.stop))
        return completion_chunks(gen, request) if request.stream else await completion_response(gen, request)

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise InvalidRequestError("inline::vllm serves generative models here; use inline::sentence-transformers "
                                  "for embeddings.", param="model")


async def create(config: VLLMEngineConfig, deps: dict[Api, Any]) -> VLLMInference:
    try:
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM
    except ImportError as exc:
        raise MissingPackageError(exc.name or "vllm", "vllm") from exc
    args = AsyncEngineArgs(model=config.model, dtype=config.dtype, max_model_len=config.max_model_len,
                           gpu_memory_utilization=config.gpu_memory_utilization,
                           tensor_parallel_size=config.tensor_parallel_size)
    engine = AsyncLLM.from_engine_args(args)
    return VLLMInference(config, engine, AutoTokenizer.from_pretrained(config.model))
