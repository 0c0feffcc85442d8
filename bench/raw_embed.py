"""The raw embedder's throughput on the chunks an ingestion stored (run by bench/ingest.py).

Reads the embed texts of every chunk of a tenant, or of the documents ``--uris-file`` lists (context,
a blank line, then the text, as ``ingest.types.Chunk.embed_text``), loads the same
sentence-transformers model the pipeline uses, and encodes them two ways with the pipeline's batch
size and normalisation, after an untimed warm-up:

- ``library``: ``SentenceTransformer.encode``, which sorts texts by characters into batches;
- ``token_sorted``: Sourcebook's embedder (``ingest.embed``) on the same model, which sorts them by
  token count (less padding), with nothing of the pipeline around it.

The texts are cut into slices of ``--slice`` texts (in ingestion order) and each slice is encoded both
ways, alternating which goes first, so that both see the same texts under the same machine load.
``--every N`` measures one slice in N (a sample, for shorter runs). Also checks that the vectors match
the stored ones (same model, same texts). Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

# Run as a script, bench/ is first on sys.path and bench/ingest.py would shadow the ingest package.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
sys.path.insert(0, str(_BENCH.parent))

from ingest.types import Chunk  # noqa: E402
from sourcebook.models import resolve_model  # noqa: E402


def embed_texts(url: str, tenant: str, uris: list[str] | None) -> tuple[list[str], list[np.ndarray]]:
    """Every chunk's embed text (of the documents ``uris`` names, if given) in ingestion order, and the
    first 256 stored vectors (for a check)."""
    texts: list[str] = []
    stored: list[np.ndarray] = []
    with psycopg.connect(url) as conn:
        register_vector(conn)
        with conn.cursor(name="chunks") as cur:
            cur.itersize = 2000
            cur.execute(
                "SELECT c.text, c.context, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE c.tenant_id = %s AND (%s::text[] IS NULL OR d.source_uri = ANY(%s)) "
                "ORDER BY d.source_uri, c.ordinal",
                (tenant, uris, uris),
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
    parser.add_argument("--model", required=True, help="the model name Sourcebook resolves (bundled, path or hub)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--slice", type=int, default=2048, help="texts per slice")
    parser.add_argument("--every", type=int, default=1, help="measure one slice in this many")
    parser.add_argument("--uris-file", type=Path, help="only these documents' chunks (one source URI a line)")
    args = parser.parse_args()

    started = time.perf_counter()
    uris = args.uris_file.read_text().split() if args.uris_file else None
    texts, stored = embed_texts(args.url, args.tenant, uris)
    read_s = time.perf_counter() - started

    import torch

    from ingest.embed import SentenceTransformerEmbedder

    location = resolve_model(args.model, offline=True)
    load_started = time.perf_counter()
    # Sets torch's threads as the pipeline does; its model is the one both ways run.
    ours = SentenceTransformerEmbedder(location, device=args.device, batch_size=args.batch_size)
    ours.warm_up()
    model = ours.model
    options: dict[str, Any] = {"batch_size": args.batch_size, "normalize_embeddings": True, "show_progress_bar": False}
    model.encode(texts[:64], **options)
    ours.embed(texts[:64])
    load_s = time.perf_counter() - load_started

    ways: dict[str, Callable[[list[str]], Any]] = {
        "library": lambda batch: model.encode(batch, convert_to_numpy=True, **options),
        "token_sorted": ours.embed,
    }
    seconds = dict.fromkeys(ways, 0.0)
    measured: list[str] = []
    first_vectors: dict[str, Any] = {}
    slices = [texts[i : i + args.slice] for i in range(0, len(texts), args.slice)][:: args.every]
    for n, part in enumerate(slices):
        order = list(ways) if n % 2 == 0 else list(reversed(ways))
        for way in order:
            encode_started = time.perf_counter()
            vectors = ways[way](part)
            seconds[way] += time.perf_counter() - encode_started
            if n == 0:
                first_vectors[way] = np.asarray(vectors)
        measured += part

    reference = np.stack(stored) if stored else None
    diffs = {
        way: float(np.max(np.abs(v[: len(stored)] - reference))) if reference is not None else None
        for way, v in first_vectors.items()
    }
    count = len(measured)
    print(
        json.dumps(
            {
                "chunks": count,
                "all_chunks": len(texts),
                "characters": sum(len(t) for t in measured),
                "slices": len(slices),
                "every": args.every,
                "slice": args.slice,
                "encode_s": {way: round(s, 3) for way, s in seconds.items()},
                "chunks_per_s": round(count / seconds["library"], 2) if seconds["library"] else None,
                "token_sorted_chunks_per_s": round(count / seconds["token_sorted"], 2)
                if seconds["token_sorted"]
                else None,
                "token_sorted_vs_library": round(seconds["library"] / seconds["token_sorted"], 3)
                if seconds["token_sorted"]
                else None,
                "read_s": round(read_s, 3),
                "load_and_warm_up_s": round(load_s, 3),
                "batch_size": args.batch_size,
                "device": str(model.device),
                "torch_threads": torch.get_num_threads(),
                "max_abs_diff_vs_stored_first_256": diffs,
            }
        )
    )


if __name__ == "__main__":
    main()
