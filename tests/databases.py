"""Real PostgreSQL (with pgvector) and Redis servers for the tests, on free 127.0.0.1 ports.

PostgreSQL comes from PyPI's `pgserver` wheel, which bundles the server binaries and the pgvector extension
(Debian has PostgreSQL but no pgvector package); we run its binaries ourselves so the server listens on TCP
like a production one. As root, the server runs as a dedicated system user (postgres refuses root).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.chroma_server import free_port


@contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL cluster; yields its admin URL (postgresql://postgres@127.0.0.1:PORT/postgres)."""
    spec = importlib.util.find_spec("pgserver")  # its files only: importing it has import-time side effects
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("These tests need PostgreSQL: pip install pgserver (in stackkit's test extra)")
    binaries = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    root = Path(tempfile.mkdtemp(prefix="stackkit-pg-"))
    data, user = root / "data", _system_user(root, binaries)
    data.mkdir()
    if user is not None:
        shutil.chown(data, user, user)
    subprocess.run([str(binaries / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                    "--encoding=utf8", "--no-sync"], check=True, capture_output=True, timeout=120, user=user)
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200"
    subprocess.run([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
                    "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90, user=user)
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _wait_for(url)
        yield url
    finally:
        subprocess.run([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60, user=user)
        shutil.rmtree(root, ignore_errors=True)


def new_database(admin_url: str) -> str:
    """A new empty database on the server (with the vector extension installed); its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return url


def _system_user(root: Path, binaries: Path) -> str | None:
    """As root, the user postgres runs as (created if missing), able to reach its binaries and `root`."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam("pgserver")
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "-s", "/usr/sbin/nologin", "pgserver"], check=True,
                       capture_output=True, timeout=30)
    root.chmod(0o777)
    for folder in (root, binaries.parent):
        for parent in folder.parents:  # o+rx on the way down
            parent.chmod(parent.stat().st_mode | 0o005)
    for path in binaries.parent.rglob("*"):  # o+r everywhere, o+x on directories and what is executable
        mode = path.stat().st_mode
        path.chmod(mode | 0o004 | (0o001 if path.is_dir() or mode & 0o100 else 0))
    return "pgserver"


def _wait_for(url: str, timeout_s: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server on a free 127.0.0.1 port, no persistence; yields redis://127.0.0.1:PORT/0."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("These tests need redis-server: `apt-get install redis-server` (./scripts/test does "
                           "it as root).")
    import redis

    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client, deadline = redis.Redis(port=port), time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
