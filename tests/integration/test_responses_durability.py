"""A server killed with SIGKILL during 20 concurrent streamed responses: after a restart, every response
whose terminal event reached its client is retrievable with all its output, and none is half-written."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import yaml

from tests.conftest import fake_stack_config
from tests.processes import start_stackkit


async def stream_one(client: httpx.AsyncClient, base: str, n: int, finished: dict[str, str]) -> None:
    words = " ".join(f"w{n}x{i}" for i in range(40))
    body = {"model": "echo", "input": words, "stream": True}
    await asyncio.sleep(n * 0.06)  # staggered: when some have finished, the others are at every stage
    try:
        async with client.stream("POST", f"{base}/responses", json=body, timeout=30) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    event = json.loads(line[6:])
                    if event["type"] == "response.completed":
                        finished[event["response"]["id"]] = words
    except httpx.HTTPError:
        pass  # the server was killed under this stream


async def load_then_kill(base: str, proc: subprocess.Popen[bytes]) -> dict[str, str]:
    finished: dict[str, str] = {}
    async with httpx.AsyncClient() as client:
        tasks = [asyncio.create_task(stream_one(client, base, n, finished)) for n in range(20)]
        for _ in range(400):  # kill once some streams have finished and others are mid-way
            if len(finished) >= 3:
                break
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.gather(*tasks)
    return finished


def test_sigkill_during_concurrent_streams_loses_no_finished_response(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(fake_stack_config(tmp_path, chunk_delay=0.02).model_dump(
        mode="json", exclude_defaults=True)))
    proc, base = start_stackkit(config)
    try:
        finished = asyncio.run(load_then_kill(base, proc))
    finally:
        proc.wait(10)
    assert 0 < len(finished) < 20, f"{len(finished)} of 20 finished: the kill should land mid-way"
    proc, base = start_stackkit(config)
    try:
        for response_id, words in finished.items():
            stored = httpx.get(f"{base}/responses/{response_id}").json()
            assert stored["status"] == "completed", stored
            assert stored["output"][0]["content"][0]["text"] == words
            assert httpx.get(f"{base}/responses/{response_id}/input_items").json()["data"][0]["content"][0][
                "text"] == words
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
