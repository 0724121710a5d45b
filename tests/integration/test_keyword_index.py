"""The tantivy keyword index never disagrees with sqlite: not after a kill -9 with writes it had not
applied yet, not after its directory is torn or deleted, not after switching a directory between
fts5 and tantivy; it keeps stores apart and takes any query text."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stackkit import LibraryClient
from stackkit.core.config import RunConfig
from stackkit.providers.utils.keywords import Fts5Keywords, TantivyKeywords
from tests.integration.test_faiss_recovery import faiss_config

pytest.importorskip("tantivy")


def config(root: Path, kind: str = "tantivy") -> RunConfig:
    return faiss_config(root, keyword_index=kind)


def keyword(client: LibraryClient, store_id: str, query: str, k: int = 10) -> list[str]:
    out = client.vector_io.query(vector_store_id=store_id, query=query, params={"mode": "keyword", "max_chunks": k})
    return [c.content for c in out.chunks]


def insert(client: LibraryClient, store_id: str, texts: list[str]) -> None:
    client.vector_io.insert(vector_store_id=store_id, chunks=[{"content": t, "chunk_id": t} for t in texts])


CRASH = """
import os, sys
from pathlib import Path
from stackkit import LibraryClient
from tests.integration.test_keyword_index import config, insert, keyword

client = LibraryClient(config(Path(sys.argv[1])))
store = client.vector_stores.create(name="crash")
gone = client.vector_stores.create(name="deleted")
print(store.id, flush=True)
insert(client, store.id, ["zebra stripes", "plain words"])
insert(client, gone.id, ["zebra crossing"])
assert keyword(client, store.id, "zebra") == ["zebra stripes"]  # applied to tantivy and committed there
insert(client, store.id, ["walrus tusks", "walrus song"])         # committed in sqlite only...
client.vector_stores.delete(gone.id)
os._exit(9)                                                        # ...when the process dies
"""


def index_ids(root: Path, store_id: str, query: str) -> list[int]:
    db = sqlite3.connect(root / "faiss" / "vector_stores.db")
    try:
        keywords = TantivyKeywords(db, root / "faiss" / "vector_stores.db.keywords")
        found = [i for i, _ in keywords.search(store_id, query, 50)]
        keywords.close()
        return found
    finally:
        db.close()


def test_writes_not_yet_applied_survive_a_kill(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 9, done.stderr
    store_id = done.stdout.split()[0]
    with LibraryClient(config(tmp_path)) as client:
        assert sorted(keyword(client, store_id, "walrus")) == ["walrus song", "walrus tusks"]
        assert keyword(client, store_id, "zebra") == ["zebra stripes"]
    db = sqlite3.connect(tmp_path / "faiss" / "vector_stores.db")
    live = {r[0] for r in db.execute("SELECT id FROM chunks")}
    db.close()
    # the deleted store's chunk is gone from the index itself, not only filtered out of answers
    assert set(index_ids(tmp_path, store_id, "zebra walrus plain crossing")) <= live
    assert len(live) == 4


@pytest.mark.parametrize("damage", ["deleted", "torn_meta", "foreign_file"])
def test_a_damaged_index_is_rebuilt_from_sqlite(tmp_path: Path, damage: str) -> None:
    texts = [f"note {i} about {'otters' if i % 3 == 0 else 'herons'} and rivers" for i in range(60)]
    with LibraryClient(config(tmp_path)) as client:
        store = client.vector_stores.create(name="s")
        insert(client, store.id, texts)
        before = keyword(client, store.id, "otters rivers", 30)
    directory = tmp_path / "faiss" / "vector_stores.db.keywords"
    if damage == "deleted":
        import shutil

        shutil.rmtree(directory)
    elif damage == "torn_meta":
        meta = directory / "meta.json"
        meta.write_bytes(meta.read_bytes()[: len(meta.read_bytes()) // 2])
    else:
        for segment in directory.glob("*.idx"):
            segment.write_bytes(b"not a segment")
    with LibraryClient(config(tmp_path)) as client:
        assert keyword(client, store.id, "otters rivers", 30) == before
        assert len([t for t in before if "otters" in t]) == 20


def test_switching_between_fts5_and_tantivy_keeps_every_chunk(tmp_path: Path) -> None:
    with LibraryClient(config(tmp_path, "fts5")) as client:
        store = client.vector_stores.create(name="s")
        insert(client, store.id, ["alpha one", "beta two"])
    with LibraryClient(config(tmp_path, "tantivy")) as client:
        assert keyword(client, store.id, "alpha") == ["alpha one"]
        insert(client, store.id, ["alpha three"])
    with LibraryClient(config(tmp_path, "fts5")) as client:  # fts5 missed "alpha three": rebuilt
        assert sorted(keyword(client, store.id, "alpha")) == ["alpha one", "alpha three"]
        insert(client, store.id, ["alpha four"])
    with LibraryClient(config(tmp_path, "tantivy")) as client:
        assert sorted(keyword(client, store.id, "alpha")) == ["alpha four", "alpha one", "alpha three"]


def test_stores_are_kept_apart_and_any_text_is_a_query(tmp_path: Path) -> None:
    with LibraryClient(config(tmp_path)) as client:
        small = client.vector_stores.create(name="small")
        big = client.vector_stores.create(name="big")
        insert(client, small.id, ["apple pie"])
        insert(client, big.id, [f"apple apple apple {i}" for i in range(50)])
        assert keyword(client, small.id, "apple", 5) == ["apple pie"]
        for hostile in ['" OR NOT ( ) * : AND', "   ", "🍎 ünïcode ÄPPLE", "x" * 5000, "apple " * 2000]:
            keyword(client, small.id, hostile)
        assert keyword(client, small.id, "APPLE pie!") == ["apple pie"]


def test_both_indexes_rank_by_bm25(tmp_path: Path) -> None:
    """The same corpus and queries: tantivy's top hit is FTS5's top hit (both are BM25; FTS5 gives no
    weight to words in more than half the rows, so the corpus keeps every word rarer than that)."""
    import random

    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(50)]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(4, 12))) for _ in range(200)]
    db = sqlite3.connect(tmp_path / "m.db")
    db.executescript("CREATE TABLE chunks (id INTEGER PRIMARY KEY, store_id TEXT, content TEXT);"
                     "CREATE VIRTUAL TABLE chunks_fts USING fts5(content, store_id UNINDEXED);")
    rows = [(i + 1, "s", t) for i, t in enumerate(texts)]
    db.executemany("INSERT INTO chunks VALUES (?, ?, ?)", rows)
    fts = Fts5Keywords(db)
    fts.stage_add(rows)
    db.commit()
    ranked_fts = {q: fts.search("s", q, 200) for q in ("w1", "w2 w3", "w4 w5 w6", "w7 w7 w8")}
    tv = TantivyKeywords(db, tmp_path / "m.db.keywords")
    for query, expected in ranked_fts.items():
        best = {i for i, score in expected if score == pytest.approx(expected[0][1], rel=1e-9)}
        got = tv.search("s", query, 5)
        assert got[0][0] in best, (query, got, expected)
    tv.close()
