"""One writer per state directory; where state lives; `stackkit ingest` against a running server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from stackkit import LibraryClient
from stackkit.core.config import load_config
from stackkit.errors import StateInUseError
from tests.integration.test_vector_stores import vector_config
from tests.processes import start_stackkit

ROOT = Path(__file__).parents[2]
NO_OPENAI = "import sys; sys.modules['openai'] = None; from stackkit.cli.main import main; main()"


def cli(*args: str, block_openai: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", NO_OPENAI, *args] if block_openai else \
        [sys.executable, "-m", "stackkit.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(vector_config("faiss", tmp_path, "").model_dump(mode="json",
                                                                                      exclude_defaults=True)))
    proc, base = start_stackkit(config)
    try:
        yield config, base
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(15)


def test_a_second_process_is_told_to_use_the_running_server(served: tuple[Path, str], tmp_path: Path) -> None:
    config, base = served
    doc = tmp_path / "doc.txt"
    doc.write_text("the launch window opens in May")
    refused = cli("ingest", "docs", str(doc), "--config", str(config))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "in use by another stackkit process" in refused.stderr and f"serving {base}" in refused.stderr
    assert f"--base-url {base}" in " ".join(refused.stderr.split())
    done = cli("ingest", "docs", str(doc), "--base-url", base, block_openai=True)  # the README install has no openai
    assert done.returncode == 0, done.stderr
    stores = httpx.get(f"{base}/vector_stores").json()["data"]
    assert [(s["name"], s["file_counts"]["completed"]) for s in stores] == [("docs", 1)]


def test_two_stacks_on_one_state_directory(tmp_path: Path) -> None:
    config = vector_config("faiss", tmp_path, "")
    with LibraryClient(config):
        with pytest.raises(StateInUseError, match="in-process"):
            LibraryClient(config)
    with LibraryClient(config):  # released on close
        pass


def test_run_files_without_a_name_keep_their_state_apart(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "run.yaml").write_text("providers: {}\n")
    first, second = (load_config(tmp_path / f / "run.yaml") for f in ("a", "b"))
    assert first.distro_name != second.distro_name
    assert first.distro_name == load_config(tmp_path / "a" / "run.yaml").distro_name  # stable across loads


def test_stackkit_home_moves_the_starter_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKKIT_HOME", str(tmp_path))
    config = load_config("starter")
    paths = [str(p.config.get("storage_dir") or p.config.get("db_path") or "") for ps in config.providers.values()
             for p in ps] + [b.db_path or "" for b in config.storage.backends.values()]
    stateful = [p for p in paths if p]
    assert stateful and all(p.startswith(str(tmp_path / "starter")) for p in stateful), stateful
