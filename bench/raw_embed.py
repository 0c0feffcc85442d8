"""The raw embedder's throughput on the chunks an ingestion stored (run by bench/ingest.py).

Reads the embed texts of every chunk of a tenant (context, a blank line, then the text, as
``ingest.types.Chunk.embed_text``), loads the same sentence-transformers model the pipeline uses,
and encodes them all in one ``encode`` call with the pipeline's batch size and normalisation, after
an untimed warm-up. Also checks that the vectors match the stored ones (same model, same texts).
Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

# Run as a script, bench/ is first on sys.path and bench/ingest.py would shadow the ingest package.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(_BENCH.parent))

from ingest.types import Chunk  # noqa: E402
from sourcebook.models import resolve_device  # noqa: E402


def embed_texts(url: str, tenant: str) -> tuple[list[str], list[np.ndarray]]:
    """Every chunk's embed text in ingestion order, and the first 256 stored vectors (for a check)."""
    texts: list[str] = []
    stored: list[np.ndarray] = []
    with psycopg.connect(url) as conn:
        register_vector(conn)
        with conn.cursor(name="chunks") as cur:
            cur.itersize = 2000
            cur.execute(
                "SELECT c.text, c.context, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE c.tenant_id = %s ORDER BY d.source_uri, c.ordinal",
                (tenant,),
            )
            for text, context, embedding in cur:
                texts.append(Chunk(0, text, context, (), None, "text", 0).embed_text)
                if len(stored) < 256:
                    stored.append(np.asarray(embedding.to_numpy(), dtype=np.float32))
    return texts, stored


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--model", required=True, help="the folder (or name) SentenceTransformer loads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    started = time.perf_counter()
    texts, stored = embed_texts(args.url, args.tenant)
    read_s = time.perf_counter() - started

    import torch
    from sentence_transformers import SentenceTransformer

    device = resolve_device(args.device)
    if device == "cpu":  # as ingest.embed.SentenceTransformerEmbedder does
        torch.set_num_threads(os.cpu_count() or 1)
    load_started = time.perf_counter()
    model = SentenceTransformer(args.model, device=device)
    model.encode(texts[:64], batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False)
    load_s = time.perf_counter() - load_started

    encode_started = time.perf_counter()
    vectors = model.encode(
        texts,
        batch_size=args.batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    encode_s = time.perf_counter() - encode_started

    diff = float(np.max(np.abs(np.asarray(vectors[: len(stored)]) - np.stack(stored)))) if stored else None
    print(
        json.dumps(
            {
                "chunks": len(texts),
                "characters": sum(len(t) for t in texts),
                "encode_s": round(encode_s, 3),
                "chunks_per_s": round(len(texts) / encode_s, 2) if encode_s else None,
                "read_s": round(read_s, 3),
                "load_and_warm_up_s": round(load_s, 3),
                "batch_size": args.batch_size,
                "device": device,
                "torch_threads": torch.get_num_threads(),
                "max_abs_diff_vs_stored_first_256": diff,
            }
        )
    )


if __name__ == "__main__":
    main()
