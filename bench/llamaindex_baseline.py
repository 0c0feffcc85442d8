"""LlamaIndex's own ingestion on the benchmark corpus (run by bench/ingest.py in bench/.cache/venv-baseline).

SimpleDirectoryReader reads the corpus (PDFs with its default PDFReader, one document per page;
HTML with llama-index-readers-file's HTMLTagReader on ``<body>`` so that, as in Sourcebook, text
rather than markup is embedded; Markdown and text as plain text, its default), then
``IngestionPipeline(transformations=[SentenceSplitter(200, 32), HuggingFaceEmbedding(MiniLM)],
vector_store=PGVectorStore)`` splits, embeds and stores them. For parity with Sourcebook the
embedder gets the same batch size (32) and normalisation, and the store an HNSW cosine index with
pgvector's defaults (m=16, ef_construction=64), as Sourcebook's chunks table has. Prints one JSON
object on stdout with the time per stage (read, split, embed, store).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

SECONDS: dict[str, float] = defaultdict(float)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--connection", required=True, help="SQLAlchemy URL (psycopg2)")
    parser.add_argument("--async-connection", required=True, help="SQLAlchemy URL (asyncpg)")
    parser.add_argument("--model", required=True, help="local sentence-transformers folder")
    parser.add_argument("--table", default="bench")
    parser.add_argument("--chunk-size", type=int, default=200)
    parser.add_argument("--chunk-overlap", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    started = time.perf_counter()
    import sqlalchemy
    from llama_index.core import SimpleDirectoryReader
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.readers.file import HTMLTagReader
    from llama_index.vector_stores.postgres import PGVectorStore

    class TimedEmbedding(HuggingFaceEmbedding):
        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            start = time.perf_counter()
            try:
                return super()._get_text_embeddings(texts)
            finally:
                SECONDS["embed"] += time.perf_counter() - start

    class TimedStore(PGVectorStore):
        def add(self, nodes: list[Any], **kwargs: Any) -> list[str]:
            start = time.perf_counter()
            try:
                return super().add(nodes, **kwargs)
            finally:
                SECONDS["store"] += time.perf_counter() - start

    SECONDS["import"] = time.perf_counter() - started

    start = time.perf_counter()
    embed_model = TimedEmbedding(model_name=args.model, device="cpu", embed_batch_size=args.batch_size, normalize=True)
    store = TimedStore.from_params(
        connection_string=args.connection,
        async_connection_string=args.async_connection,
        table_name=args.table,
        embed_dim=384,
        hnsw_kwargs={
            "hnsw_m": 16,
            "hnsw_ef_construction": 64,
            "hnsw_ef_search": 40,
            "hnsw_dist_method": "vector_cosine_ops",
        },
    )
    SECONDS["model_load"] = time.perf_counter() - start

    start = time.perf_counter()
    reader = SimpleDirectoryReader(
        input_dir=str(args.corpus),
        recursive=True,
        file_extractor={".html": HTMLTagReader(tag="body")},
        # The corpus lives under bench/.cache, which the default hidden-path check would exclude whole.
        exclude_hidden=False,
        exclude=["**/.*"],
    )
    documents = reader.load_data()
    SECONDS["read"] = time.perf_counter() - start

    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap), embed_model],
        vector_store=store,
    )
    start = time.perf_counter()
    nodes = pipeline.run(documents=documents)
    run_s = time.perf_counter() - start
    SECONDS["split_and_other"] = run_s - SECONDS["embed"] - SECONDS["store"]
    total_s = time.perf_counter() - started

    files = {d.metadata.get("file_path") for d in documents}
    # After the clock stops: what the model actually received, in its own tokens (MiniLM truncates at 256).
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    characters = sum(len(t) for t in texts)
    model = embed_model._model
    limit = int(model.max_seq_length)
    tokens = truncated = embedded_tokens = 0
    for i in range(0, len(texts), 1000):
        for ids in model.tokenizer(texts[i : i + 1000], add_special_tokens=False)["input_ids"]:
            tokens += len(ids)
            embedded_tokens += min(len(ids), limit - 2)
            truncated += len(ids) > limit - 2
    del texts
    engine = sqlalchemy.create_engine(args.connection)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text(f"SELECT count(*) FROM public.data_{args.table}")).scalar_one()
    engine.dispose()
    print(
        json.dumps(
            {
                "files": len(files),
                "documents": len(documents),
                "nodes": len(nodes),
                "rows_in_store": int(rows),
                "embedded_characters": characters,
                "model_tokens": tokens,
                "embedded_tokens": embedded_tokens,
                "nodes_truncated_by_model": truncated,
                "model_max_seq_length": limit,
                "seconds": {k: round(v, 3) for k, v in SECONDS.items()},
                "pipeline_run_s": round(run_s, 3),
                "in_process_total_s": round(total_s, 3),
                "nodes_per_s_in_process": round(len(nodes) / total_s, 2) if total_s else None,
                "torch_threads": __import__("torch").get_num_threads(),
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    main()
