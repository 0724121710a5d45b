#!/usr/bin/env python3
"""LibraryClient benchmarks (issue: core stack). Prints one JSON line per measurement.

  python bench/bench_library_client.py            # uses the harness's fake upstream for cold start

* import_ms: ``python -c "import stackkit"`` minus ``python -c "pass"`` (median of 15), and which
  heavy modules it pulled in (should be none).
* cold_start_ms: a fresh process: import stackkit, build a LibraryClient over a remote-only stack
  (remote::openai -> bench/fake_upstream.py) and get the first chat completion (median of 5).
* overhead_us: per call, LibraryClient (sync and async) minus calling the fake provider directly
  with the same validated request (median of 7 rounds of 20,000 calls).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
HARNESS_PY = os.environ.get("BENCH_PY", ".bench/venv-harness/bin/python")
KWARGS = {"model": "echo", "messages": [{"role": "user", "content": "hello there"}]}


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def run_py(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([PY, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def bench_import() -> None:
    base = statistics.median(run_py("pass") for _ in range(15))
    full = statistics.median(run_py("import stackkit") for _ in range(15))
    heavy = subprocess.run([PY, "-c", "import sys, stackkit; print(sorted(m for m in ('torch', 'numpy', "
                            "'openai', 'fastapi', 'httpx', 'pydantic') if m in sys.modules))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    emit({"bench": "import", "import_ms": round((full - base) * 1000, 1), "interpreter_ms": round(base * 1000, 1),
          "heavy_modules_loaded": heavy})


COLD = """
import time; t0 = time.perf_counter()
from stackkit import LibraryClient
c = LibraryClient({config!r})
t1 = time.perf_counter()
r = c.chat.completions.create(model="fake-model", messages=[{{"role": "user", "content": "hi"}}])
t2 = time.perf_counter()
assert "FAKEOK" in r.choices[0].message.content, r
c.close()
print(round((t1 - t0) * 1000, 1), round((t2 - t0) * 1000, 1))
"""


def bench_cold_start() -> None:
    port = 18017
    upstream = subprocess.Popen([HARNESS_PY, os.path.join(HERE, "fake_upstream.py"), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "run.yaml")
            with open(config, "w") as f:
                f.write(textwrap.dedent(f"""
                    providers:
                      inference:
                        - provider_id: up
                          provider_type: remote::openai
                          config: {{base_url: "http://127.0.0.1:{port}/v1", api_key: none}}
                    registered_resources:
                      models: [{{model_id: fake-model}}]
                    storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp}/kv.db"}}}}, stores: {{registry: kv}}}}
                    """))
            runs = []
            for _ in range(5):
                out = subprocess.run([PY, "-c", COLD.format(config=config)], capture_output=True, text=True,
                                     check=True).stdout.split()
                runs.append((float(out[0]), float(out[1])))
    finally:
        upstream.terminate()
        upstream.wait(10)
    emit({"bench": "cold_start", "client_ready_ms": statistics.median(r[0] for r in runs),
          "first_answer_ms": statistics.median(r[1] for r in runs),
          "note": "in-process from before `import stackkit` to the first chat answer; remote-only stack"})


def fake_config(tmp: str) -> Any:
    from stackkit.core.config import parse_config

    return parse_config(textwrap.dedent("""
        providers:
          inference: [{provider_id: fake, provider_type: inline::fake}]
        registered_resources:
          models: [{model_id: echo, provider_model_id: fake-llm}]
        storage: {backends: {m: {type: memory}}, stores: {registry: m}}
        """), env={})


def bench_overhead(calls: int = 20_000, rounds: int = 7) -> None:
    from stackkit import AsyncLibraryClient, LibraryClient
    from stackkit.apis.datatypes import Api
    from stackkit.apis.inference import ChatCompletionRequest

    sync_client = LibraryClient(fake_config(""))
    provider = sync_client.stack.tables[Api.inference].providers["fake"]
    loop = asyncio.new_event_loop()  # the caller's own loop: the client hands calls to its background thread
    upstream_kwargs = {**KWARGS, "model": "fake-llm"}

    def direct_sync() -> None:
        loop.run_until_complete(provider.chat_completion(ChatCompletionRequest.model_validate(upstream_kwargs)))

    def via_sync() -> None:
        sync_client.chat.completions.create(**KWARGS)

    def timed(fn: Any) -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t0) / calls * 1e6

    for fn in (direct_sync, via_sync):
        timed(fn)  # warm up
    direct = [timed(direct_sync) for _ in range(rounds)]
    via = [timed(via_sync) for _ in range(rounds)]
    sync_client.close()
    loop.close()
    emit_overhead("LibraryClient", direct, via)

    async def async_rounds() -> tuple[list[float], list[float]]:
        client = await AsyncLibraryClient(fake_config("")).initialize()
        assert client.stack is not None
        inner = client.stack.tables[Api.inference].providers["fake"]
        create = client.chat.completions.create  # type: ignore[attr-defined]

        async def timed_async(direct: bool) -> float:
            t0 = time.perf_counter()
            for _ in range(calls):
                if direct:
                    await inner.chat_completion(ChatCompletionRequest.model_validate(upstream_kwargs))
                else:
                    await create(**KWARGS)
            return (time.perf_counter() - t0) / calls * 1e6

        await timed_async(True)
        await timed_async(False)
        d = [await timed_async(True) for _ in range(rounds)]
        v = [await timed_async(False) for _ in range(rounds)]
        await client.close()
        return d, v

    d, v = asyncio.run(async_rounds())
    emit_overhead("AsyncLibraryClient", d, v)


def emit_overhead(client: str, direct: list[float], via: list[float]) -> None:
    d, v = statistics.median(direct), statistics.median(via)
    emit({"bench": "library_client_overhead", "client": client, "direct_us": round(d, 2), "client_us": round(v, 2),
          "overhead_us": round(v - d, 2)})


if __name__ == "__main__":
    bench_import()
    bench_cold_start()
    bench_overhead()
