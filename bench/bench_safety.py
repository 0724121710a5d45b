#!/usr/bin/env python3
"""Safety: inline::pii throughput on 1 KB messages, and the latency a guardrail adds to a chat completion.

* pii_messages_per_s: run_shield through AsyncLibraryClient on 1 KB messages (half with one e-mail
  address or card number in them), one message per call.
* guardrail_added_us: p50 of a chat completion (fake provider) with `guardrails: [pii]` minus without,
  non-streaming and streaming, in-process.
Prints JSON lines.
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

CONFIG = parse_config(textwrap.dedent("""
    providers:
      inference: [{provider_id: fake, provider_type: inline::fake}]
      safety: [{provider_id: pii, provider_type: inline::pii}]
    registered_resources:
      models: [{model_id: echo, provider_id: fake, provider_model_id: fake-llm}]
      shields: [{shield_id: pii, provider_id: pii}]
    storage: {backends: {m: {type: memory}}, stores: {registry: m}}
    """), env={})
FILLER = ("Our quarterly report covers revenue, churn and the roadmap for the next release of the product. ")


def message(i: int) -> str:
    body = (FILLER * 12)[:1024]
    if i % 4 == 1:
        body = body[:500] + " contact jane.doe@example.com " + body[530:]
    elif i % 4 == 3:
        body = body[:500] + " card 4111 1111 1111 1111 " + body[526:]
    return body[:1024]


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


async def main() -> None:
    async with AsyncLibraryClient(CONFIG) as client:
        msgs = [message(i) for i in range(2000)]
        rates = []
        for _ in range(3):
            t = time.perf_counter()
            for text in msgs:
                await client.safety.run_shield(shield_id="pii", messages=[{"role": "user", "content": text}])
            rates.append(len(msgs) / (time.perf_counter() - t))
        emit({"bench": "pii_shield", "message_bytes": len(msgs[0]), "messages_per_s": round(statistics.median(rates)),
              "us_per_message": round(1e6 / statistics.median(rates), 1)})

        async def p50(n: int, stream: bool, guarded: bool) -> float:
            extra = {"extra_body": {"guardrails": ["pii"]}} if guarded else {}
            times = []
            for _ in range(n):
                t = time.perf_counter()
                out = await client.chat.completions.create(
                    model="echo", messages=[{"role": "user", "content": FILLER * 2}], stream=stream, **extra)
                if stream:
                    async for _chunk in out:
                        pass
                times.append(time.perf_counter() - t)
            return statistics.median(times) * 1e6

        for stream in (False, True):
            await p50(200, stream, True)
            plain, guarded = await p50(3000, stream, False), await p50(3000, stream, True)
            emit({"bench": "guardrail_latency", "stream": stream, "plain_p50_us": round(plain, 1),
                  "guarded_p50_us": round(guarded, 1), "added_us": round(guarded - plain, 1)})


if __name__ == "__main__":
    asyncio.run(main())
