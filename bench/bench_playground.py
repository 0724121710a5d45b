"""The playground's first load in Debian's Chromium against `stackkit run starter` (a real process, fresh
STACKKIT_HOME): bytes transferred (page, scripts, styles and the API calls it makes on load) and the time
from navigation to interactive (models, routes and shields loaded, every view mounted: body[data-ready]),
cold (a new browser context, empty cache) and warm (a reload: the assets answer 304).

    python bench/bench_playground.py [--runs 20] [--chromium /usr/bin/chromium]

Prints one JSON line per run and, last, the medians and maxima.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
from playwright.sync_api import sync_playwright

from bench.bench_starter import ROOT, free_port

MEASURE = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  return {transfer_bytes: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
          body_bytes: nav.encodedBodySize + resources.reduce((n, r) => n + r.encodedBodySize, 0),
          requests: 1 + resources.length, ready_ms: window.__ready_ms};
}"""


def start_starter(port: int, home: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STACKKIT_HOME": home, "STACKKIT_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "stackkit.cli.main", "run", "starter", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("stackkit run starter did not become healthy in 60 s")


def load(page: object, url: str, reload: bool) -> dict[str, float]:
    # time to interactive, read in the page: navigation start to the moment body[data-ready] is set
    page.add_init_script("new MutationObserver((_, o) => { if (document.body?.dataset.ready === 'yes') {"  # type: ignore[attr-defined]
                         " window.__ready_ms = performance.now(); o.disconnect(); } })"
                         ".observe(document, {subtree: true, attributes: true, attributeFilter: ['data-ready']});")
    if reload:
        page.reload()  # type: ignore[attr-defined]
    else:
        page.goto(url)  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-ready=yes]")  # type: ignore[attr-defined]
    page.wait_for_function("() => window.__ready_ms !== undefined")  # type: ignore[attr-defined]
    return page.evaluate(MEASURE)  # type: ignore[attr-defined, no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    port = free_port()
    home = tempfile.mkdtemp(prefix="bench-playground-")
    proc = start_starter(port, home)
    url = f"http://127.0.0.1:{port}/playground/"
    cold, warm = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            for run in range(args.runs):
                context = browser.new_context()
                page = context.new_page()
                first = load(page, url, reload=False)
                again = load(page, url, reload=True)
                context.close()
                cold.append(first)
                warm.append(again)
                print(json.dumps({"run": run, "cold": first, "warm": again}), flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(home, ignore_errors=True)

    def summary(runs: list[dict[str, float]]) -> dict[str, float]:
        return {f"{k}_{f.__name__}": round(f(r[k] for r in runs), 1) for k in ("transfer_bytes", "ready_ms")
                for f in (statistics.median, max)} | {"requests": runs[0]["requests"]}

    print(json.dumps({"runs": args.runs, "cold": summary(cold), "warm": summary(warm)}))


if __name__ == "__main__":
    main()
