#!/usr/bin/env python3
"""Recall@10 of the HNSW index `inline::faiss` builds (`index: hnsw`: M=32, efConstruction 40, efSearch 128
by default) against exact search, at 100k x 384, on two kinds of vectors: uniformly random ones (HNSW's worst
case: no structure to exploit) and clustered ones (1,000 centres plus noise, the shape real sentence
embeddings have). Prints JSON lines.
"""

from __future__ import annotations

import json
import time

import faiss
import numpy as np

N, DIM, QUERIES = 100_000, 384, 200


def normalized(a: np.ndarray) -> np.ndarray:
    out: np.ndarray = (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    return out


def recall(vectors: np.ndarray, queries: np.ndarray, ef_search: int) -> tuple[float, float]:
    exact = faiss.IndexFlatIP(DIM)
    exact.add(vectors)
    _, truth = exact.search(queries, 10)
    hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
    started = time.perf_counter()
    hnsw.add(vectors)
    built = time.perf_counter() - started
    hnsw.hnsw.efSearch = ef_search
    _, found = hnsw.search(queries, 10)
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])), built


def main() -> None:
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    random = normalized(rng.standard_normal((N, DIM)))
    random_q = normalized(rng.standard_normal((QUERIES, DIM)))
    centres = rng.standard_normal((1000, DIM))
    clustered = normalized(centres[rng.integers(0, 1000, N)] + 0.5 * rng.standard_normal((N, DIM)))
    clustered_q = normalized(centres[rng.integers(0, 1000, QUERIES)] + 0.5 * rng.standard_normal((QUERIES, DIM)))
    for name, vectors, queries in (("random", random, random_q), ("clustered", clustered, clustered_q)):
        for ef in (128, 512):
            value, built = recall(vectors, queries, ef)
            print(json.dumps({"bench": "hnsw_recall_at_10", "vectors": name, "n": N, "ef_search": ef,
                              "recall": round(value, 3), "build_s": round(built, 1)}), flush=True)


if __name__ == "__main__":
    main()
