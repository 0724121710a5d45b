#!/usr/bin/env python3
"""One vs two `stackkit run` replicas of the full production stack (API key, Redis quota, every store on
PostgreSQL, OTLP telemetry: bench_production.py's `full`) in front of the fake upstream, chat at 16
concurrent clients per replica.

This machine has 2 cores: the replicas share CPU 1 (upstream, load generators, Redis and PostgreSQL get
CPU 0), so two replicas cannot be faster than one here; what this shows is that they serve together, sharing
one quota and one database, at the same CPU per request. On N cores, throughput scales with replicas
until the upstream, Redis or PostgreSQL is the limit.

    python bench/bench_replicas.py [--duration 10]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HARNESS_PY = str(ROOT / ".bench/venv-harness/bin/python")


def _start(config: Path, port: int, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STACKKIT_HOME": str(home), "UPSTREAM_BASE_URL": "http://127.0.0.1:18000/v1"}
    proc = subprocess.Popen(["taskset", "-c", "1", str(ROOT / ".venv/bin/stackkit"), "run", str(config), "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            import urllib.request

            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1).read()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _load(ports: list[int], duration: float, key: str) -> list[dict]:
    loads = [subprocess.Popen(["taskset", "-c", "0", HARNESS_PY, str(ROOT / "bench/load.py"), "--base-url",
                               f"http://127.0.0.1:{port}/v1", "--api-key", key, "--cases", "chat:16", "--duration",
                               str(duration), "--warmup", "2", "--label", f"replica-{port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for port in ports]
    return [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in loads]


def main() -> None:
    import bench.bench_production as production
    from tests.databases import new_database, postgres_server, redis_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), production._Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    upstream = subprocess.Popen(["taskset", "-c", "0", HARNESS_PY, str(ROOT / "bench/fake_upstream.py"), "--port",
                                 "18000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with postgres_server() as admin, redis_server() as redis_url, tempfile.TemporaryDirectory() as tmp:
            otlp = f"http://127.0.0.1:{sink.server_address[1]}/v1/traces"
            config = production._configs(Path(tmp), new_database(admin), redis_url, otlp)["full"]
            for count in (1, 2):
                ports = [18321 + i for i in range(count)]
                replicas = [_start(config, port, Path(tmp) / f"home-{port}") for port in ports]
                try:
                    rows = _load(ports, args.duration, production.KEY)
                finally:
                    for proc in replicas:
                        proc.terminate()
                        proc.wait(30)
                total = sum(r["rps"] for r in rows)
                each = ", ".join(f"{r['rps']:.0f}" for r in rows)
                p50 = ", ".join(str(r["p50_ms"]) for r in rows)
                print(f"{count} replica(s), chat c=16 each: {total:.0f} requests/s in all ({each}), "
                      f"errors {sum(r['errors'] for r in rows)}, p50 {p50} ms")
    finally:
        upstream.terminate()
        sink.shutdown()


if __name__ == "__main__":
    main()
