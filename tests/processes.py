"""`stackkit run` as a real subprocess on a free 127.0.0.1 port, for tests that kill or restart it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.chroma_server import free_port

ROOT = Path(__file__).parents[1]


def start_stackkit(config: Path | str, timeout_s: float = 15.0, stderr: Any = subprocess.DEVNULL
                   ) -> tuple[subprocess.Popen[bytes], str]:
    """The process and its base URL, once /v1/health answers (the process is killed if it never does);
    `stderr` may be a file to keep its log in."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stackkit.cli.main", "run", str(config), "--port", str(port)],
                            stdout=stderr, stderr=stderr, cwd=ROOT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=0.5).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"stackkit run {config} did not become healthy in {timeout_s} s")
