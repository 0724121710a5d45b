"""Failover under load, as issue 12 asks: one model served by two upstreams (bench/fake_upstream.py, each its
own process) behind `stackkit run`; 16 concurrent clients for 60 s; upstream A is SIGKILLed at 20 s and
started again at 30 s. Reports requests answered, failed requests (must be 0), latency, and how many
requests A served before the kill and after it came back.

    python -m bench.bench_failover [--seconds 60] [--clients 16]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx

from bench.bench_starter import ROOT, free_port


def upstream(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("the fake upstream did not start")


def chats(port: int) -> int:
    stats = httpx.get(f"http://127.0.0.1:{port}/_stats", timeout=2).json()
    return int(stats.get("chat", 0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    pa, pb, port = free_port(), free_port(), free_port()
    a, b = upstream(pa), upstream(pb)
    root = Path(tempfile.mkdtemp())
    (root / "run.yaml").write_text(textwrap.dedent(f"""
        providers:
          inference:
            - {{provider_id: a, provider_type: remote::openai,
                config: {{base_url: "http://127.0.0.1:{pa}/v1", api_key: k}}}}
            - {{provider_id: b, provider_type: remote::openai,
                config: {{base_url: "http://127.0.0.1:{pb}/v1", api_key: k}}}}
        registered_resources:
          models:
            - {{model_id: shared, targets: [{{provider_id: a, provider_model_id: fake-model}},
                                           {{provider_id: b, provider_model_id: fake-model}}]}}
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{root}/kv.db"}}}}, stores: {{registry: kv}}}}
        server: {{access_log: false}}
        """))
    server = subprocess.Popen([sys.executable, "-m", "stackkit.cli.main", "run", str(root / "run.yaml"), "--port",
                               str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            httpx.get(base + "/health", timeout=0.5)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    latencies: list[float] = []
    failures: list[str] = []
    stop_at = time.monotonic() + args.seconds

    def client() -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                reply = http.post("/chat/completions", json={"model": "shared",
                                                             "messages": [{"role": "user", "content": "hi"}]})
                latencies.append(time.perf_counter() - started)
                if reply.status_code != 200:
                    failures.append(reply.text[:200])

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    time.sleep(args.seconds / 3)
    a_before = chats(pa)
    a.send_signal(signal.SIGKILL)
    a.wait()
    time.sleep(args.seconds / 6)
    a = upstream(pa)
    for t in threads:
        t.join()
    a_after, b_total = chats(pa), chats(pb)
    for proc in (a, b, server):
        proc.terminate()
        proc.wait(30)
    cuts = statistics.quantiles(latencies, n=100)
    print(json.dumps({"clients": args.clients, "seconds": args.seconds, "requests": len(latencies),
                      "failed": len(failures), "first_failures": failures[:3],
                      "p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2),
                      "max_ms": round(max(latencies) * 1000, 1), "a_before_kill": a_before,
                      "a_after_return": a_after, "b_total": b_total}))


if __name__ == "__main__":
    main()
