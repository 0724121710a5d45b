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
    parser.addini("stackkit_block_network", "refuse connections beyond this machine in tests that do not record "
                  "(true/false)", default="false")


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
        misses = getattr(recorded, "stackkit_misses", [])
        if misses:
            pytest.fail(f"{len(misses)} request(s) had no recording in {path} (even if the code caught the error): "
                        f"{', '.join(misses)}. Re-record with --record-mode=record.")
        if record_mode is RecordMode.replay and recorded is not None and not recorded.all_played:
            unplayed = len(recorded.data) - recorded.play_count
            pytest.fail(f"{unplayed} recorded interaction(s) in {path} were never requested: the code under "
                        "test no longer makes them. Re-record with --record-mode=record.")


_LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")


def _local(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    return (isinstance(host, (str, bytes)) and (str(host, "ascii") if isinstance(host, bytes) else host).startswith(
        _LOOPBACK)) or not isinstance(address, tuple)


@pytest.fixture(autouse=True)
def _stackkit_network_guard(request: pytest.FixtureRequest, record_mode: RecordMode) -> Iterator[None]:
    """With ``stackkit_block_network = true``: a test that does not record (or run live) can reach only
    this machine, so no test passes by quietly calling a real service."""
    enabled = str(request.config.getini("stackkit_block_network")).lower() in ("1", "true", "yes")
    recording_live = "cassette" in request.fixturenames and record_mode is not RecordMode.replay
    if not enabled or recording_live:
        yield
        return
    import socket

    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, \
        socket.getaddrinfo

    def refuse(address: Any) -> None:
        raise ConnectionRefusedError(f"stackkit's test network guard: {address!r} is not on this machine; use the "
                                     "`cassette` fixture to record the traffic once (--record-mode=record).")

    def connect(self: socket.socket, address: Any) -> None:
        if not _local(address):
            refuse(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _local(address):
            refuse(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _local((host,)):
            refuse((host,))
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex  # type: ignore[method-assign, assignment]
    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo
