"""LlamaIndex's PGVectorStore in hybrid mode on the retrieval benchmark's data (run by bench/retrieve.py
in the baseline venv of bench/setup_baseline.sh). Prints one JSON line.

Same passages, same MiniLM vectors, same queries and query vectors, same filter (a ``group`` metadata
key, ``g0`` = 5% of the rows; document d of 50 passages in group d mod 20, as bench/retrieve.py
loads ours). The store is created without an index, the nodes added, then the HNSW index built with
the parameters ours uses (m 16, ef_construction 64, cosine); queries use LlamaIndex's defaults
(``VectorStoreQueryMode.HYBRID``: its dense query plus a ``ts_rank`` query on a ``to_tsvector('english')``
column, results merged). Latency is the wall time of ``PGVectorStore.query``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.vector_stores.postgres import PGVectorStore
from sqlalchemy import create_engine, text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="libpq URL of the (not yet created) database")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--doc-chunks", type=int, default=50)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()

    texts = json.loads((args.dir / "texts.json").read_text())
    queries = json.loads((args.dir / "queries.json").read_text())
    vectors = np.load(args.dir / "vectors.npy")
    qvec = np.load(args.dir / "qvec.npy")

    parts = urlsplit(args.url)
    database = parts.path.lstrip("/")
    socket_dir = parse_qs(parts.query)["host"][0]
    admin = create_engine(f"postgresql+psycopg2://postgres@/postgres?host={socket_dir}", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {database}"))
        conn.execute(text(f"CREATE DATABASE {database}"))
    admin.dispose()
    store = PGVectorStore.from_params(
        connection_string=f"postgresql+psycopg2://postgres@/{database}?host={socket_dir}",
        async_connection_string=f"postgresql+asyncpg://postgres@/{database}?host={socket_dir}",
        table_name="bench",
        embed_dim=int(vectors.shape[1]),
        hybrid_search=True,
        text_search_config="english",
    )
    nodes = [
        TextNode(
            text=t,
            embedding=vectors[i].tolist(),
            metadata={"group": f"g{(i // args.doc_chunks) % args.groups}"},
        )
        for i, t in enumerate(texts)
    ]
    started = time.perf_counter()
    for start in range(0, len(nodes), 2000):
        store.add(nodes[start : start + 2000])
    load_s = time.perf_counter() - started
    engine = create_engine(f"postgresql+psycopg2://postgres@/{database}?host={socket_dir}")
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET maintenance_work_mem = '1GB'"))
        conn.execute(
            text(
                "CREATE INDEX data_bench_embedding_idx ON data_bench USING hnsw (embedding vector_cosine_ops) "
                "WITH (m = 16, ef_construction = 64)"
            )
        )
        conn.execute(text("ANALYZE data_bench"))
    index_s = time.perf_counter() - started

    filters = MetadataFilters(filters=[MetadataFilter(key="group", value="g0")])

    def one(i: int) -> list[str]:
        query = VectorStoreQuery(
            query_embedding=qvec[i].tolist(),
            query_str=queries[i],
            similarity_top_k=10,
            sparse_top_k=10,
            mode=VectorStoreQueryMode.HYBRID,
            filters=filters,
        )
        return [n.node_id for n in store.query(query).nodes or []]

    returned = [len(one(i)) for i in range(len(queries))]  # warm-up pass
    latencies = []
    for _ in range(args.passes):
        for i in range(len(queries)):
            started = time.perf_counter()
            one(i)
            latencies.append((time.perf_counter() - started) * 1000)
    print(
        json.dumps(
            {
                "load_s": round(load_s, 1),
                "hnsw_build_s": round(index_s, 1),
                "p50_ms": round(statistics.median(latencies), 2),
                "p95_ms": round(float(np.percentile(latencies, 95)), 2),
                "mean_results_returned_of_20": round(statistics.fmean(returned), 2),
                "note": "dense + ts_rank('english') results merged; pgvector defaults (ef_search 40, no iterative "
                "scan), so a filtered dense query may return fewer than k rows",
            }
        )
    )


if __name__ == "__main__":
    main()
