#!/usr/bin/env python3
"""inline::transformers: batching throughput, one request against model.generate, and the cost of
constrained decoding.

On a small random Llama built here, or with `--model smollm2-135m-instruct` on the real packaged model,
measures through AsyncLibraryClient (the provider's real code path):
  * aggregate generated tokens/s with 8 concurrent requests vs 1 at a time (target >= 3x);
  * one request's tokens/s vs calling `model.generate` directly with the same settings (target >= 0.9x);
  * one request's decode rate with a JSON schema enforced vs free text (llguidance's mask per token), and
    its time to the first token.
Prints JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from stackkit import AsyncLibraryClient
from stackkit.core.config import parse_config
from stackkit.testing.tiny_model import build_tiny_model


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


async def timed_requests(client: Any, prompts: list[str], max_tokens: int, concurrent: bool) -> tuple[float, int]:
    async def one(p: str) -> int:
        out = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": p}],
                                                   max_tokens=max_tokens, temperature=0)
        return int(out.usage.completion_tokens)

    start = time.perf_counter()
    if concurrent:
        tokens = sum(await asyncio.gather(*(one(p) for p in prompts)))
    else:
        tokens = 0
        for p in prompts:
            tokens += await one(p)
    return time.perf_counter() - start, tokens


def generate_directly(model: Any, tokenizer: Any, prompt: str, max_tokens: int) -> tuple[float, int]:
    import torch

    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                         tokenize=False)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    elapsed = time.perf_counter() - start
    return elapsed, int(out.shape[1] - ids["input_ids"].shape[1])


SCHEMA = {"type": "object", "additionalProperties": False, "required": ["items"], "properties": {
    "items": {"type": "array", "items": {"type": "object", "additionalProperties": False, "required": ["name", "n"],
                                         "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}}}}}


async def constrained_cost(client: Any, prompt: str, max_tokens: int, runs: int) -> None:
    firsts: list[float] = []

    async def rate(**extra: Any) -> float:
        """Decode rate: tokens after the first over the time after it (the JSON answer is shorter than the
        free one, so prefill would otherwise weigh on it more). Records the time to the first token."""
        started = time.perf_counter()
        stream = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}],
                                                      max_tokens=max_tokens, temperature=0, stream=True,
                                                      stream_options={"include_usage": True}, **extra)
        first, tokens = 0.0, 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and not first:
                first = time.perf_counter()
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
        firsts.append(first - started)
        return (tokens - 1) / (time.perf_counter() - first)

    await rate(response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}})  # compile
    firsts.clear()
    free = statistics.median([await rate() for _ in range(runs)])
    ttft = statistics.median(firsts)
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA}}
    held = statistics.median([await rate(response_format=fmt) for _ in range(runs)])
    emit({"bench": "transformers_constrained", "ttft_ms": round(ttft * 1000, 1), "free_tokens_per_s": round(free, 1),
          "json_schema_tokens_per_s": round(held, 1), "ratio": round(held / free, 2)})


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or str(build_tiny_model(Path(tmp) / "small-llama", hidden_size=args.hidden,
                                                  layers=args.layers, heads=8, context=2048))
        config = parse_config(textwrap.dedent(f"""
            providers:
              inference:
                - {{provider_id: local, provider_type: inline::transformers,
                    config: {{model: "{path}", model_id: m, max_batch_size: 8, device: cpu}}}}
            registered_resources: {{models: [{{model_id: m, provider_id: local, provider_model_id: m}}]}}
            storage: {{backends: {{m: {{type: memory}}}}, stores: {{registry: m}}}}
            """), env={})
        async with AsyncLibraryClient(config) as client:
            provider = await client.stack.tables["inference"].providers["local"].loading.get()  # type: ignore[union-attr]
            params = sum(p.numel() for p in provider.model.parameters())
            prompts = [f"Tell me about item number {i} and the weather in Paris." for i in range(8)]
            await timed_requests(client, prompts[:2], 8, concurrent=True)  # warm up
            seq = [await timed_requests(client, prompts, args.max_tokens, concurrent=False) for _ in range(args.runs)]
            con = [await timed_requests(client, prompts, args.max_tokens, concurrent=True) for _ in range(args.runs)]
            seq_tps = statistics.median(t / s for s, t in seq)
            con_tps = statistics.median(t / s for s, t in con)
            emit({"bench": "transformers_batching", "params_m": round(params / 1e6, 1), "requests": 8,
                  "max_tokens": args.max_tokens, "sequential_tokens_per_s": round(seq_tps, 1),
                  "concurrent8_tokens_per_s": round(con_tps, 1), "speedup": round(con_tps / seq_tps, 2),
                  "max_batch_seen": provider.engine.max_batch_seen})
            ours, direct = [], []
            for _ in range(args.runs):
                s, t = await timed_requests(client, prompts[:1], args.max_tokens, concurrent=False)
                ours.append(t / s)
                s, t = generate_directly(provider.model, provider.tokenizer, prompts[0], args.max_tokens)
                direct.append(t / s)
            mine, theirs = statistics.median(ours), statistics.median(direct)
            emit({"bench": "transformers_single_vs_generate", "stackkit_tokens_per_s": round(mine, 1),
                  "generate_tokens_per_s": round(theirs, 1), "ratio": round(mine / theirs, 2)})
            await constrained_cost(client, prompts[0], args.max_tokens, args.runs)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="a model for inline::transformers (default: a random Llama)")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    asyncio.run(main(ap.parse_args()))
