"""inline::llama-cpp throughput on the packaged SmolLM2-135M-Instruct (Q4_1 GGUF), CPU: one request alone,
then 8 at once (decoded together in one context), against llama-cpp-python's own Llama object on the same
prompt (one request, then 8 one after the other: what its OpenAI server does with 8 clients, which it
serializes). Greedy, 128 new tokens each.

    python -m bench.bench_llama_cpp [--tokens 128] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import textwrap
import time

from stackkit import AsyncLibraryClient
from stackkit.core.config import parse_config
from stackkit.providers.utils.model_cache import fetch

MODEL = "smollm2-135m-instruct"
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a long story about a dragon who learns to cook."}]


async def ours(tokens: int, concurrency: int) -> dict[str, float]:
    config = parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: cpp, provider_type: inline::llama-cpp,
                        config: {{model: {MODEL}, max_sequences: {concurrency}, n_ctx: 1024}}}}]
        registered_resources: {{models: [{{model_id: {MODEL}, provider_id: cpp}}]}}
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        """), env={})
    async with AsyncLibraryClient(config) as client:
        await client.wait_ready(120)

        async def one() -> tuple[int, float]:
            started = time.perf_counter()
            out = await client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0,
                                                       max_tokens=tokens)
            return out.usage.completion_tokens, time.perf_counter() - started

        await one()  # warm
        single = await one()
        started = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"one_tokens_per_s": round(single[0] / single[1], 1),
            "concurrent_tokens_per_s": round(sum(n for n, _ in results) / wall, 1),
            "concurrent_p50_request_s": round(statistics.median(t for _, t in results), 2)}


def theirs(tokens: int, concurrency: int) -> dict[str, float]:
    from llama_cpp import Llama

    llm = Llama(str(fetch(MODEL)), n_ctx=1024, n_threads=os.cpu_count(), verbose=False)

    def one() -> tuple[int, float]:
        started = time.perf_counter()
        out = llm.create_chat_completion(messages=MESSAGES, temperature=0, max_tokens=tokens)  # type: ignore[arg-type]
        return int(out["usage"]["completion_tokens"]), time.perf_counter() - started  # type: ignore[index]

    one()
    single = one()
    started = time.perf_counter()
    results = [one() for _ in range(concurrency)]  # serialized, as its server does
    wall = time.perf_counter() - started
    return {"one_tokens_per_s": round(single[0] / single[1], 1),
            "serialized_tokens_per_s": round(sum(n for n, _ in results) / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    mine = asyncio.run(ours(args.tokens, args.concurrency))
    base = theirs(args.tokens, args.concurrency)
    print(json.dumps({"stackkit": mine, "llama_cpp_python": base,
                      "concurrent_vs_one_request": round(mine["concurrent_tokens_per_s"] / mine["one_tokens_per_s"], 2),
                      "concurrent_vs_llama_cpp_python_serialized": round(
                          mine["concurrent_tokens_per_s"] / base["serialized_tokens_per_s"], 2)}))


if __name__ == "__main__":
    main()
