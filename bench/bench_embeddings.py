#!/usr/bin/env python3
"""inline::sentence-transformers: embeddings/s through stackkit vs SentenceTransformer.encode.

The same 2,000 sentences: encode() directly; one request through AsyncLibraryClient; 20 concurrent
requests of 100 (micro-batched by the provider); and over HTTP with the openai SDK (20 concurrent
requests of 100 against a live server). Target: in-process >= 0.9x encode(). Prints JSON lines.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import textwrap
import time
from typing import Any

from stackkit import AsyncLibraryClient
from stackkit.core.config import parse_config

WORDS = ("stackkit serves models from any provider behind one API while vector stores keep chunks of "
         "documents with their embeddings and the weather in Paris is sunny with a light breeze").split()
SENTENCES = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(8 + i % 17)) for i in range(2000)]
CONFIG = parse_config(textwrap.dedent("""
    providers:
      inference:
        - {provider_id: st, provider_type: inline::sentence-transformers}
    registered_resources:
      models: [{model_id: minilm, provider_id: st, provider_model_id: all-MiniLM-L6-v2, model_type: embedding}]
    storage: {backends: {m: {type: memory}}, stores: {registry: m}}
    """), env={})


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def rate(seconds: list[float]) -> float:
    return round(len(SENTENCES) / statistics.median(seconds), 1)


async def main(runs: int = 3) -> None:
    from stackkit.testing.live_server import LiveServer

    async with AsyncLibraryClient(CONFIG) as client:
        model = client.stack.tables["inference"].providers["st"].model  # type: ignore[union-attr]
        model.encode(SENTENCES[:64], batch_size=64)  # warm up
        direct, one, many = [], [], []
        for _ in range(runs):
            t = time.perf_counter()
            model.encode(SENTENCES, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            direct.append(time.perf_counter() - t)
            t = time.perf_counter()
            await client.embeddings.create(model="minilm", input=SENTENCES)
            one.append(time.perf_counter() - t)
            t = time.perf_counter()
            await asyncio.gather(*(client.embeddings.create(model="minilm", input=SENTENCES[i:i + 100])
                                   for i in range(0, len(SENTENCES), 100)))
            many.append(time.perf_counter() - t)
    emit({"bench": "embeddings", "sentences": len(SENTENCES), "encode_per_s": rate(direct),
          "library_one_request_per_s": rate(one), "library_20x100_concurrent_per_s": rate(many),
          "ratio_one_request": round(rate(one) / rate(direct), 2),
          "ratio_concurrent": round(rate(many) / rate(direct), 2)})

    import openai

    with LiveServer(CONFIG) as server:
        sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        await sdk.embeddings.create(model="minilm", input=SENTENCES[:64])
        http = []
        for _ in range(runs):
            t = time.perf_counter()
            await asyncio.gather(*(sdk.embeddings.create(model="minilm", input=SENTENCES[i:i + 100])
                                   for i in range(0, len(SENTENCES), 100)))
            http.append(time.perf_counter() - t)
        await sdk.close()
    emit({"bench": "embeddings_http", "sentences": len(SENTENCES), "http_20x100_concurrent_per_s": rate(http),
          "ratio_vs_encode": round(rate(http) / rate(direct), 2)})


if __name__ == "__main__":
    asyncio.run(main())
