"""Stored chat completions under load, as issue 12 asks: 64 concurrent clients for 60 s against a real
`stackkit run` (inline::fake, so the server's own work is what is measured), with `store: true` and, for
comparison, without; then every completion answered 200 is looked up in the list.

    python -m bench.bench_stored_completions [--seconds 60] [--clients 64]

Prints one JSON line per case: requests answered, requests/s, latency p50/p99, and how many answered
completions were missing from GET /v1/chat/completions afterwards (must be 0).
"""

from __future__ import annotations

import argparse
import json
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


def serve(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = root / "run.yaml"
    config.write_text(textwrap.dedent(f"""
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models: [{{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{root}/kv.db"}}}}, stores: {{registry: kv}}}}
        server: {{access_log: false}}
        """))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stackkit.cli.main", "run", str(config), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            httpx.get(base + "/health", timeout=1)
            return proc, base
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the server did not start")


def load(base: str, clients: int, seconds: float, store: bool) -> tuple[list[str], list[float], int]:
    ids: list[str] = []
    latencies: list[float] = []
    errors = [0]
    stop_at = time.monotonic() + seconds

    def run(n: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                started = time.perf_counter()
                reply = http.post("/chat/completions", json={
                    "model": "echo", "store": store, "messages": [{"role": "user", "content": f"client {n} no {i}"}]})
                latencies.append(time.perf_counter() - started)
                if reply.status_code == 200:
                    ids.append(reply.json()["id"])
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids, latencies, errors[0]


def listed(base: str) -> set[str]:
    found: set[str] = set()
    after = None
    with httpx.Client(base_url=base, timeout=60) as http:
        while True:
            page = http.get("/chat/completions", params={"limit": 100, **({"after": after} if after else {})}).json()
            found.update(c["id"] for c in page["data"])
            if not page["has_more"]:
                return found
            after = page["last_id"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args()
    for store in (False, True):
        with tempfile.TemporaryDirectory() as root:
            proc, base = serve(Path(root))
            try:
                ids, latencies, errors = load(base, args.clients, args.seconds, store)
                missing = len(set(ids) - listed(base)) if store else None
            finally:
                proc.terminate()
                proc.wait(30)
        cuts = statistics.quantiles(latencies, n=100)
        print(json.dumps({"store": store, "clients": args.clients, "seconds": args.seconds, "answered": len(ids),
                          "errors": errors, "requests_per_s": round(len(ids) / args.seconds, 1),
                          "p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2),
                          "missing_from_list": missing}), flush=True)


if __name__ == "__main__":
    main()
