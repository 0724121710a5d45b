#!/usr/bin/env python3
"""Keyword (BM25) search as a store grows, FTS5 against tantivy (issue 9a: any query < 5 ms at 100k).

100k chunks of 80 words drawn from a Zipf law over 30k words (the shape of real text: a few words
in nearly every chunk, most in few), inserted through AsyncLibraryClient into inline::faiss with each
keyword index. Measured per index: median end-to-end `vector_io.query(mode=keyword)` for queries of
1, 3, 5 and 40 common words and one rare word; insert of 100 chunks at 100k and the first search
after it (which applies tantivy's outbox); reopening; keyword bytes per chunk; and how far the two
rankings agree (overlap of the top 10 on queries of mid-frequency words, where FTS5's BM25 gives
weight: it ignores words found in more than half the rows). Prints JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from stackkit import AsyncLibraryClient
from stackkit.core.config import RunConfig, parse_config

VOCAB = 30_000
WORDS_PER_CHUNK = 80


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def config(root: Path, kind: str) -> RunConfig:
    return parse_config(f"""
providers:
  inference: [{{provider_id: e, provider_type: inline::fake, config: {{embedding_dimension: 8}}}}]
  vector_io:
    - provider_id: vec
      provider_type: inline::faiss
      config: {{storage_dir: '{root}/vec', embedding_model: embed, embedding_dimension: 8, keyword_index: {kind}}}
registered_resources:
  models: [{{model_id: embed, provider_id: e, provider_model_id: fake-embed, model_type: embedding}}]
storage: {{backends: {{kv: {{type: sqlite, db_path: '{root}/kv.db'}}}}, stores: {{registry: kv}}}}
""", env={})


def corpus(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, VOCAB + 1) ** 1.07
    words = rng.choice(VOCAB, (n, WORDS_PER_CHUNK), p=p / p.sum())
    return [" ".join(f"w{w}" for w in row) for row in words]


def keyword_bytes(root: Path, kind: str) -> int:
    if kind == "tantivy":
        return sum(f.stat().st_size for f in (root / "vec").glob("vector_stores.db.keywords/*"))
    import sqlite3

    db = sqlite3.connect(root / "vec" / "vector_stores.db")
    try:
        return int(db.execute("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'chunks_fts%'").fetchone()[0])
    except sqlite3.OperationalError:  # sqlite built without dbstat
        return -1
    finally:
        db.close()


QUERIES = {"1 common": "w0", "3 common": "w1 w2 w3", "5 common": "w1 w2 w3 w4 w5",
           "40 common": " ".join(f"w{i}" for i in range(3, 200, 5)), "1 rare": "w25000",
           "3 mid": "w300 w900 w2000"}


async def timed_ms(fn: Any, repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


async def run(kind: str, texts: list[str], root: Path) -> dict[str, list[int]]:
    rng = np.random.default_rng(1)
    async with AsyncLibraryClient(config(root, kind)) as client:
        store = await client.vector_stores.create(name="kw")
        t = time.perf_counter()
        for start in range(0, len(texts) - 100, 1000):
            part = texts[start:start + 1000]
            vectors = rng.standard_normal((len(part), 8)).tolist()
            await client.vector_io.insert(vector_store_id=store.id, chunks=[
                {"content": c, "embedding": v, "chunk_id": f"c{start + i}"}
                for i, (c, v) in enumerate(zip(part, vectors, strict=True))])
        bulk_s = time.perf_counter() - t

        async def query(text: str, k: int = 10) -> Any:
            return await client.vector_io.query(vector_store_id=store.id, query=text,
                                                params={"mode": "keyword", "max_chunks": k})

        await query("w0")
        tail = [{"content": c, "embedding": [0.5] * 8} for c in texts[-100:]]
        t = time.perf_counter()
        await client.vector_io.insert(vector_store_id=store.id, chunks=tail)
        insert_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        await query("w7")
        first_search_ms = (time.perf_counter() - t) * 1000
        search = {name: await timed_ms(lambda q=q: query(q)) for name, q in QUERIES.items()}
        emit({"bench": "keyword_search_ms", "index": kind, "chunks": len(texts), **search})
        emit({"bench": "keyword_writes", "index": kind, "bulk_insert_s": round(bulk_s, 1),
              "insert_100_at_100k_ms": round(insert_ms, 1), "first_search_after_ms": round(first_search_ms, 1)})
        tops = {}
        for i in range(30):
            words = " ".join(f"w{300 + (i * 37 + j * 101) % 3000}" for j in range(3))
            tops[words] = [c.chunk_id for c in (await query(words)).chunks]
    t = time.perf_counter()
    async with AsyncLibraryClient(config(root, kind)) as client:
        reopen = time.perf_counter() - t
    emit({"bench": "keyword_store", "index": kind, "reopen_s": round(reopen, 2),
          "keyword_bytes_per_chunk": round(keyword_bytes(root, kind) / len(texts))})
    return {q: ids for q, ids in tops.items()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    args = parser.parse_args()
    texts = corpus(args.size)
    tops = {}
    for kind in ("tantivy", "fts5"):
        with tempfile.TemporaryDirectory() as tmp:
            tops[kind] = await run(kind, texts, Path(tmp))
    overlap = [len(set(tops["tantivy"][q]) & set(tops["fts5"][q])) / max(len(tops["fts5"][q]), 1)
               for q in tops["fts5"]]
    emit({"bench": "keyword_agreement", "queries": len(overlap),
          "top10_overlap_mean": round(statistics.mean(overlap), 3), "top10_overlap_min": round(min(overlap), 3)})


if __name__ == "__main__":
    asyncio.run(main())
