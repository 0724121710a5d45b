"""`stackkit run starter` as a newcomer runs it: launch to healthy, launch to the first embedding
answered (the packaged MiniLM loaded), to the first chat answer from the default local model (SmolLM2,
from the model cache: the first run ever also fetches and converts it), and RSS idle after start, once
MiniLM is in and once both models are in.

    python bench/bench_starter.py [--runs 3]

Each run uses a fresh STACKKIT_HOME and prints one JSON line; the last line is the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_run() -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    env = {**os.environ, "STACKKIT_HOME": tempfile.mkdtemp(prefix="bench-starter-"), "HF_HUB_OFFLINE": "1"}
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_URL", "VLLM_URL", "LOCAL_MODEL", "SAFETY_MODEL"):
        env.pop(key, None)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "stackkit.cli.main", "run", "starter", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        healthy = ready = None
        idle_rss = None
        deadline = started + 120
        while time.perf_counter() < deadline and ready is None:
            try:
                if healthy is None and httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    healthy = time.perf_counter() - started
                    idle_rss = rss_mb(proc.pid)
                if healthy is not None:
                    r = httpx.post(f"{base}/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "hello"},
                                   timeout=60)
                    if r.status_code == 200:
                        ready = time.perf_counter() - started
            except httpx.TransportError:
                time.sleep(0.01)
        embed_rss = rss_mb(proc.pid)
        r = httpx.post(f"{base}/chat/completions", timeout=300, json={
            "model": "smollm2-135m-instruct", "temperature": 0, "max_tokens": 16,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]})
        chat = time.perf_counter() - started if r.status_code == 200 else float("nan")
        if r.status_code != 200:
            print(r.text[:300], file=sys.stderr)
        time.sleep(0.5)
        return {"healthy_s": round(healthy or float("nan"), 3), "first_embedding_s": round(ready or float("nan"), 3),
                "first_chat_s": round(chat, 3), "rss_at_healthy_mb": round(idle_rss or float("nan"), 1),
                "rss_minilm_loaded_mb": round(embed_rss, 1), "rss_both_loaded_mb": round(rss_mb(proc.pid), 1)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        runs.append(one_run())
        print(json.dumps(runs[-1]), flush=True)
    print(json.dumps({"median": {k: statistics.median(r[k] for r in runs) for k in runs[0]}, "runs": len(runs)}))


if __name__ == "__main__":
    main()
