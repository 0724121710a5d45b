#!/usr/bin/env python3
"""What the production features cost per request: the gateway bench (run_gateway_bench.py, remote::openai in
front of the fake upstream) on three stacks, same machine, same cases:

  plain      bench/configs/gateway.yaml
  auth+mem   + an API key (server.auth) + an in-memory quota rule
  full       + the API key + a Redis quota (a real redis-server) + every store on PostgreSQL (a real server,
             pgserver's binaries) + telemetry (OTLP/HTTP traces to a receiver here, Prometheus metrics)

Budgets (issue 12): auth+mem adds <= 0.15 ms CPU per chat request over plain, full <= 0.5 ms. CPU per request
is the gateway process tree's CPU time over the requests served (load.py --gateway-pid), so what Redis and
PostgreSQL spend is not counted: they are other processes, as they would be other machines.

The three run without the loopback-only network namespace (--no-netns) so the gateway can reach the
databases; the gateway is pinned to CPU 1, upstream and load generator to CPU 0.

    python bench/bench_production.py [--duration 10] [--out bench/results/production.jsonl]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
KEY = "sk-bench-0123456789abcdef0123"
CASES = "chat:1,chat:16,stream:16,responses_stored:16"


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that takes every export and counts it."""

    exports = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _Sink.exports += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _configs(work: Path, postgres_url: str, redis_url: str, otlp: str) -> dict[str, Path]:
    base = (ROOT / "bench/configs/gateway.yaml").read_text()
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    auth = f"server: {{auth: {{api_keys: [{{principal: bench, key_sha256: {digest}, attributes: {{team: b}}}}]}}}}\n"
    rules = "rules: [{requests_per_minute: 100000000, tokens_per_minute: 10000000000}]"
    full = base.split("storage:")[0] + auth + (
        f"quotas: {{redis_url: '{redis_url}', {rules}}}\n"
        f"storage:\n  backends: {{pg: {{type: postgres, url: '{postgres_url}'}}}}\n  stores: {{registry: pg}}\n"
        f"telemetry: {{traces: otlp, otlp_endpoint: '{otlp}', metrics: true}}\n")
    texts = {"plain": base, "auth+mem": base + auth + f"quotas: {{{rules}}}\n", "full": full,
             "full-untraced": full.replace("traces: otlp", "traces: none"),  # to tell tracing's share
             "full-sampled": full.replace("traces: otlp", "traces: otlp, traces_sample_ratio: 0.1")}
    paths = {}
    for name, text in texts.items():
        paths[name] = work / f"{name.replace('+', '-')}.yaml"
        paths[name].write_text(text)
    return paths


def _run(label: str, config: Path, args: argparse.Namespace, home: Path) -> list[dict]:
    command = [sys.executable, str(ROOT / "bench/run_gateway_bench.py"), "--label", label, "--no-netns",
               "--base-url", "http://127.0.0.1:8321/v1", "--model", "fake-model", "--api-key", KEY,
               "--ready-url", "http://127.0.0.1:8321/v1/health", "--cases", args.cases,
               "--duration", str(args.duration),
               "--", str(ROOT / ".venv/bin/stackkit"), "run", str(config), "--port", "8321"]
    env = {**os.environ, "STACKKIT_HOME": str(home / label)}
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{label}: the gateway bench failed:\n{out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="each round runs the three stacks in turn; the "
                        "table gives medians (this machine's neighbours make single runs vary by ~20%%)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--stacks", default="plain,auth+mem,full",
                        help="which stacks to run (also: full-untraced, full-sampled)")
    parser.add_argument("--cases", default=CASES)
    args = parser.parse_args()
    from tests.databases import new_database, postgres_server, redis_server

    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    otlp = f"http://127.0.0.1:{sink.server_address[1]}/v1/traces"
    results: list[dict] = []
    with postgres_server() as admin, redis_server() as redis_url, tempfile.TemporaryDirectory() as tmp:
        configs = _configs(Path(tmp), new_database(admin), redis_url, otlp)
        for round_ in range(args.rounds):
            for label, config in configs.items():
                if label not in args.stacks.split(","):
                    continue
                print(f"[production bench] round {round_ + 1}: {label}", file=sys.stderr, flush=True)
                results += [{**r, "round": round_} for r in _run(label, config, args, Path(tmp))]
    sink.shutdown()
    if args.out:
        with open(args.out, "a") as f:
            for row in results:
                f.write(json.dumps(row) + "\n")
    _table(results, args.cases)
    print(f"OTLP exports received during the full run: {_Sink.exports}")


def _table(results: list[dict], cases: str) -> None:
    """Medians over the rounds: requests/s and gateway CPU ms per request, and what each stack adds."""
    labels = ("plain", "auth+mem", "full", "full-untraced", "full-sampled")
    print("| case | " + " | ".join(f"{label}: req/s, CPU ms/req" for label in labels) + " | added over plain |")
    print("|---" * (len(labels) + 2) + "|")
    for case in cases.split(","):
        rows = {label: [r for r in results if r.get("label") == label and r.get("case") == case] for label in labels}
        rps = {label: statistics.median(r["rps"] for r in rows[label]) for label in labels if rows[label]}
        cpu = {label: statistics.median(r["gateway_cpu_ms_per_req"] for r in rows[label])
               for label in labels if rows[label]}
        errors = sum(r.get("errors", 0) for label in labels for r in rows[label])
        if "plain" not in cpu:
            continue
        cells = [f"{rps[label]:.0f}, {cpu[label]:.3f}" if label in cpu else "-" for label in labels]
        added = ", ".join(f"+{cpu[label] - cpu['plain']:.3f}" if label in cpu else "-" for label in labels[1:])
        print(f"| {case} | " + " | ".join(cells) + f" | {added} |" + (f" ({errors} errors)" if errors else ""))


if __name__ == "__main__":
    main()
