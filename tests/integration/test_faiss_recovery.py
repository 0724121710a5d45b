"""FAISS durability: a process killed between the vector append and the chunk commit, a torn log tail,
a compaction interrupted before its rename. After each, every chunk's own text must find that chunk
first with a self-match score of 1.0 (vector search, not keyword: the vectors are what a crash breaks)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from stackkit import LibraryClient
from stackkit.core.config import RunConfig, parse_config
from stackkit.providers.inline.faiss import record_dtype

DIM = 16


def faiss_config(root: Path, index: str = "flat", keyword_index: str = "fts5") -> RunConfig:
    return parse_config(textwrap.dedent(f"""
        providers:
          inference:
            - {{provider_id: fake, provider_type: inline::fake, config: {{embedding_dimension: {DIM}}}}}
          vector_io:
            - provider_id: vec
              provider_type: inline::faiss
              config: {{storage_dir: "{root}/faiss", embedding_model: embed, index: {index},
                        keyword_index: {keyword_index}}}
        registered_resources:
          models: [{{model_id: embed, provider_id: fake, provider_model_id: fake-embed, model_type: embedding}}]
        storage: {{backends: {{kv: {{type: sqlite, db_path: "{root}/kv.db"}}}}, stores: {{registry: kv}}}}
        """), env={})


def insert(client: LibraryClient, store_id: str, texts: list[str]) -> None:
    client.vector_io.insert(vector_store_id=store_id, chunks=[{"content": t} for t in texts])


def assert_every_chunk_finds_itself(client: LibraryClient, store_id: str, texts: list[str]) -> None:
    for text in texts:
        out = client.vector_io.query(vector_store_id=store_id, query=text, params={"mode": "vector", "max_chunks": 3})
        assert out.chunks[0].content == text, (text, [c.content for c in out.chunks])
        assert out.scores[0] == pytest.approx(1.0, abs=1e-5), (text, out.scores)


CRASH = """
import os, sys
from stackkit import LibraryClient
from stackkit.providers.inline import faiss
from tests.integration.test_faiss_recovery import faiss_config, insert
from pathlib import Path
from typing import Any

real_fsync = os.fsync
def fsync_then_die(fd):
    real_fsync(fd)   # the first write of the insert is durable...
    os._exit(9)      # ...and the process dies before anything else (more log writes, the sqlite commit)
client = LibraryClient(faiss_config(Path(sys.argv[1])))
store = client.vector_stores.create(name="crash")
print(store.id, flush=True)
insert(client, store.id, ["committed one", "committed two"])
faiss.os.fsync = fsync_then_die
insert(client, store.id, ["never committed a", "never committed b", "never committed c"])
"""


def test_crash_between_vector_append_and_chunk_commit(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 9, done.stderr
    store_id = done.stdout.split()[0]
    with LibraryClient(faiss_config(tmp_path)) as client:
        # sqlite rolled the chunk ids of the lost insert back, so these new chunks get the same ids
        fresh = ["fresh alpha", "fresh beta", "fresh gamma", "fresh delta"]
        insert(client, store_id, fresh)
        assert_every_chunk_finds_itself(client, store_id, ["committed one", "committed two", *fresh])
        for lost in ("never committed a", "never committed b", "never committed c"):
            never = client.vector_io.query(vector_store_id=store_id, query=lost, params={"mode": "vector"})
            assert never.scores[0] < 0.99, (lost, never)  # no chunk carries a lost chunk's vector
    with LibraryClient(faiss_config(tmp_path)) as client:  # and again after a clean restart
        assert_every_chunk_finds_itself(client, store_id, ["committed one", "committed two", *fresh])


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_torn_tail_and_interrupted_compaction(tmp_path: Path, index: str) -> None:
    texts = [f"chunk number {i} about topic {i % 7}" for i in range(40)]
    with LibraryClient(faiss_config(tmp_path, index)) as client:
        store_id = client.vector_stores.create(name="torn").id
        insert(client, store_id, texts)
    log = tmp_path / "faiss" / f"{store_id}.vlog"
    record = record_dtype(DIM).itemsize
    assert log.stat().st_size == 40 * record
    with open(log, "ab") as f:
        f.write(b"\x07" * (record // 2))  # half a record: the tail a crash mid-append leaves
    log.with_suffix(".vlog.tmp").write_bytes(b"\x01" * 100)  # a compaction that died before its rename
    with LibraryClient(faiss_config(tmp_path, index)) as client:
        assert_every_chunk_finds_itself(client, store_id, texts)
        insert(client, store_id, ["after the repair"])
        assert_every_chunk_finds_itself(client, store_id, [*texts, "after the repair"])
    assert log.stat().st_size % record == 0
    with LibraryClient(faiss_config(tmp_path, index)) as client:
        assert_every_chunk_finds_itself(client, store_id, [*texts, "after the repair"])


STALE_GRAPH = """
import os, sys
from pathlib import Path
from typing import Any
from stackkit import LibraryClient
from tests.integration.test_faiss_recovery import faiss_config, insert
client = LibraryClient(faiss_config(Path(sys.argv[1]), "hnsw"))
insert(client, sys.argv[2], [f"late chunk {i}" for i in range(10)])
os._exit(9)  # no clean shutdown: the saved graph does not cover these
"""


def test_a_saved_hnsw_graph_is_reused_and_caught_up(tmp_path: Path) -> None:
    from stackkit.providers.inline import faiss as faiss_provider

    texts = [f"early chunk {i} on topic {i % 5}" for i in range(40)]
    with LibraryClient(faiss_config(tmp_path, "hnsw")) as client:
        store_id = client.vector_stores.create(name="graph").id
        insert(client, store_id, texts)
    graph = tmp_path / "faiss" / f"{store_id}.hnsw"
    assert graph.exists()  # saved at shutdown
    done = subprocess.run([sys.executable, "-c", STALE_GRAPH, str(tmp_path), store_id], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 9, done.stderr
    built: list[int] = []
    original = faiss_provider.FaissIndex._new_index

    def counting(self: Any, dim: int) -> Any:
        built.append(dim)
        return original(self, dim)

    faiss_provider.FaissIndex._new_index = counting  # type: ignore[method-assign]
    try:
        with LibraryClient(faiss_config(tmp_path, "hnsw")) as client:
            assert built == []  # the saved graph was loaded, not rebuilt from the log
            assert_every_chunk_finds_itself(client, store_id, [*texts, *(f"late chunk {i}" for i in range(10))])
    finally:
        faiss_provider.FaissIndex._new_index = original  # type: ignore[method-assign]
