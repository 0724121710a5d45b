#!/usr/bin/env python3
"""Responses beyond the gateway harness: a 50-turn previous_response_id chain, in-process on the fake
provider, so the figure is stackkit's own work per turn. Budget (issue 10): turn 50 reads its history in
one query, and the cost per turn grows only with the bytes of context forwarded.

    python bench/bench_responses.py

Prints JSON lines: per-turn time at turns 1, 10, 25 and 50 with the context bytes, and the number of
SQL statements turn 50 ran to read its history.
"""

from __future__ import annotations

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


def config(root: Path) -> Any:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models: [{{model_id: echo, provider_model_id: fake-llm}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{root}/kv.db"}}}}, stores: {{registry: kv}}}}
        """), env={})


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with AsyncLibraryClient(config(Path(tmp))) as client:
            service = client.stack.impls["agents"]
            statements: list[str] = []
            conn = service.db.conn
            conn.set_trace_callback(statements.append)
            previous = None
            timings: dict[int, list[float]] = {}
            for turn in range(1, 51):
                text = f"turn {turn}: " + "words of this turn " * 10
                runs = []
                for _ in range(5):  # branches from the same parent: the same work each time
                    statements.clear()
                    t = time.perf_counter()
                    out = await client.responses.create(model="echo", input=text, previous_response_id=previous)
                    runs.append((time.perf_counter() - t) * 1000)
                reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
                timings[turn] = runs
                if turn in (1, 10, 25, 50):
                    context = (await service._row(out.id))[2]
                    print(json.dumps({"bench": "responses_chain", "turn": turn,
                                      "ms_per_turn": round(statistics.median(runs), 3),
                                      "context_bytes": len(context), "history_selects": len(reads)}), flush=True)
                previous = out.id


if __name__ == "__main__":
    asyncio.run(main())
