"""pytest plugin: one cassette per test at ``tests/cassettes/<test_module>/<test_name>.yaml``.

Use the ``cassette`` fixture in a test whose provider traffic should be recorded and replayed.
The mode comes from ``--record-mode`` or ``STACKKIT_RECORD_MODE`` (default ``replay``); the
``record_mode`` fixture tells a test whether it must start the real service. In replay mode a
test fails if it leaves recorded interactions unplayed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stackkit.testing.recording import RecordMode, recording


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stackkit")
    group.addoption("--record-mode", choices=[m.value for m in RecordMode], default=None,
                    help="stackkit cassettes: replay (default), record, record-if-missing or live")
    parser.addini("stackkit_cassette_dir", "where cassettes live (relative to rootdir)", default="tests/cassettes")


@pytest.fixture(scope="session")
def record_mode(pytestconfig: pytest.Config) -> RecordMode:
    value = pytestconfig.getoption("record_mode") or os.environ.get("STACKKIT_RECORD_MODE") or "replay"
    try:
        return RecordMode(value)
    except ValueError:
        raise pytest.UsageError(
            f"STACKKIT_RECORD_MODE={value!r}: use one of {', '.join(m.value for m in RecordMode)}") from None


def cassette_path(request: pytest.FixtureRequest) -> Path:
    root = Path(str(request.config.rootpath)) / str(request.config.getini("stackkit_cassette_dir"))
    module = request.node.module.__name__.rsplit(".", 1)[-1] if request.node.module else "tests"
    name = re.sub(r"[^\w.-]+", "-", request.node.name).strip("-")
    return root / module / f"{name}.yaml"


@pytest.fixture
def cassette(request: pytest.FixtureRequest, record_mode: RecordMode) -> Iterator[Any]:
    path = cassette_path(request)
    if record_mode is RecordMode.replay and not path.exists():
        pytest.fail(f"No cassette at {path}. Record it once against the real service with "
                    "--record-mode=record (or STACKKIT_RECORD_MODE=record-if-missing).")
    with recording(path, record_mode) as recorded:
        yield recorded
        if record_mode is RecordMode.replay and recorded is not None and not recorded.all_played:
            unplayed = len(recorded.data) - recorded.play_count
            pytest.fail(f"{unplayed} recorded interaction(s) in {path} were never requested: the code under "
                        "test no longer makes them. Re-record with --record-mode=record.")
