"""API keys issued with `stackkit keys create` (the real CLI, as a subprocess) against a running server with
`server.auth.stored_keys: true`: the key works at once through the openai SDK as its principal (its team's
resources are its own), only its SHA-256 is stored, it appears in no log, `list` never shows it, and after
`stackkit keys revoke` it is a 401 within the cache time (5 s)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import openai
import pytest

from tests.processes import ROOT, start_stackkit


def _keys(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "stackkit.cli.main", "keys", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _create(config: Path, principal: str, team: str) -> str:
    return _keys("create", str(config), "--principal", principal, "--attribute", f"team={team}").splitlines()[-1]


def test_keys_made_with_the_cli_work_at_once_and_stop_when_revoked(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(textwrap.dedent(f"""
        version: 2
        distro_name: keys
        providers:
          inference: [{{provider_id: fake, provider_type: inline::fake}}]
        registered_resources:
          models: [{{model_id: echo, provider_id: fake, provider_model_id: fake-llm}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{tmp_path}/state/kv.db"}}}}, stores: {{registry: kv}}}}
        server: {{auth: {{stored_keys: true}}}}
        """))
    log = tmp_path / "server.log"
    with open(log, "wb") as sink:
        proc, base = start_stackkit(config, stderr=sink)
        try:
            ada, grace = _create(config, "ada", "red"), _create(config, "grace", "blue")
            assert ada.startswith("sk-stackkit-") and ada != grace
            with openai.OpenAI(base_url=base, api_key=ada, max_retries=0) as as_ada, \
                    openai.OpenAI(base_url=base, api_key=grace, max_retries=0) as as_grace:
                made = as_ada.responses.create(model="echo", input="mine")
                with pytest.raises(openai.NotFoundError):
                    as_grace.responses.retrieve(made.id)  # grace's key is another principal, another team
                listed = _keys("list", str(config))
                assert "ada" in listed and "team=red" in listed and ada not in listed
                key_id = next(line.split("│")[1].strip() for line in listed.splitlines() if "ada" in line)
                _keys("revoke", str(config), key_id)
                deadline = time.monotonic() + 10
                while True:
                    try:
                        as_ada.models.list()
                    except openai.AuthenticationError:
                        break
                    assert time.monotonic() < deadline, "a revoked key kept working"
                    time.sleep(0.2)
                assert as_grace.models.list().data  # the other key still works
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=base, api_key="sk-stackkit-" + "x" * 43, max_retries=0).models.list()
        finally:
            proc.terminate()
            proc.wait(15)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file())
    for key in (ada, grace):
        assert key.encode() not in stored and key.encode() not in log.read_bytes()
    assert b"ada" in log.read_bytes()  # the access log names the principal, not the key
