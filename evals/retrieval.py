"""``sourcebook eval retrieval``: a BEIR set through the real retrieval pipeline, scored and gated.

The corpus is ingested (incrementally) into a tenant of its own, named after the dataset and the
ingestion fingerprint, so a change of tokenizer or model gets a fresh index and re-runs reuse it.
Each corpus document becomes one Sourcebook document; a query's ranking is its candidates' documents
in fused (or reranked) order, first occurrence wins, before context selection. Modes: ``bm25``,
``vector``, ``hybrid``, and ``rank_bm25`` (the reference implementation over the same chunks and
tokens, which ``bm25`` must match). Queries are rewritten by the pipeline's rewriter and their
embeddings computed in one batch up front (the same model and texts the pipeline would embed).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from evals import report
from evals.datasets import Dataset
from evals.metrics import METRICS, mean_metrics, query_metrics
from ingest import store
from ingest.jobs import WorkerRuntime, settings_fingerprint
from ingest.pipeline import TextDocument, ingest_texts
from ingest.types import AccessList
from retrieval.pipeline import RetrievalPipeline
from retrieval.tokenize import Tokenizer, TokenizerSpec
from retrieval.types import MODES, Caller, Embedder
from sourcebook.db import Database
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import ensure_tenant
from sourcebook.settings import Settings

EVAL_MODES = (*MODES, "rank_bm25")
GROUP = "eval"
URI_PREFIX = "beir:"
Progress = Callable[[str, int, int], None]


class _PrecomputedEmbedder:
    """``Embedder`` that answers from vectors computed in one batch, and falls back to the model."""

    def __init__(self, inner: Embedder, cache: dict[str, npt.NDArray[np.float32]]) -> None:
        self._inner = inner
        self._cache = cache

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if texts and all(t in self._cache for t in texts):
            return np.stack([self._cache[t] for t in texts])
        return self._inner.embed(texts)


def eval_tenant(dataset: str, settings: Settings) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-")[:40] or "set"
    return f"eval-{slug}-{settings_fingerprint(settings)[:8]}"


def ingest_corpus(db: Database, runtime: WorkerRuntime, dataset: Dataset, tenant: str, progress: Progress) -> int:
    """Bring the tenant's documents in line with the corpus; returns how many were (re-)ingested."""
    deps = runtime.deps()
    with db.pool.connection() as conn:
        ensure_tenant(conn, tenant)
        stored = store.documents_under(conn, tenant_id=tenant, prefix=URI_PREFIX)
    wanted = {URI_PREFIX + d.id for d in dataset.corpus}
    with db.pool.connection() as conn:
        for gone in (d for d in stored if d.source_uri not in wanted):
            with conn.transaction():
                store.delete_document(conn, document_id=gone.id)
    access = AccessList(tenant, (GROUP,))
    changed = 0
    batch = 256
    for start in range(0, len(dataset.corpus), batch):
        docs = [
            TextDocument(URI_PREFIX + d.id, d.title, d.text, access, {}) for d in dataset.corpus[start : start + batch]
        ]
        changed += sum(r.outcome != "unchanged" for r in ingest_texts(deps, docs))
        progress("ingest", min(start + batch, len(dataset.corpus)), len(dataset.corpus))
    return changed


def _ranked_documents(source_uris: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for uri in source_uris:
        seen.setdefault(uri.removeprefix(URI_PREFIX), None)
    return list(seen)


def _rank_bm25_runner(
    db: Database, tenant: str, tokenizer: Tokenizer, settings: Settings
) -> Callable[[str], list[str]]:
    from rank_bm25 import BM25Okapi

    with db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT c.id, c.context, c.text, d.source_uri FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.tenant_id = %s ORDER BY c.id",
            (tenant,),
        ).fetchall()
    ids = np.array([int(r[0]) for r in rows])  # type: ignore[call-overload]
    uris = [str(r[3]) for r in rows]
    corpus = [tokenizer.tokens(f"{r[1]}\n\n{r[2]}" if r[1] else str(r[2])) for r in rows]
    bm = BM25Okapi(corpus, k1=settings.bm25_k1, b=settings.bm25_b, epsilon=settings.bm25_epsilon)
    postings: dict[str, set[int]] = {}
    for i, doc in enumerate(corpus):
        for term in set(doc):
            postings.setdefault(term, set()).add(i)

    def run(query: str) -> list[str]:
        terms = tokenizer.tokens(query)
        matching = sorted(set().union(*(postings.get(t, set()) for t in terms))) if terms else []
        if not matching:
            return []
        scores = bm.get_batch_scores(terms, matching)
        order = sorted(range(len(matching)), key=lambda i: (-scores[i], ids[matching[i]]))[:100]
        return _ranked_documents([uris[matching[i]] for i in order])

    return run


@dataclass(frozen=True, slots=True)
class EvalResult:
    summary: dict[str, Any]
    regressions: list[str]


@dataclass(frozen=True, slots=True)
class Corpus:
    """A dataset ingested into its own tenant."""

    tenant: str
    chunks: int
    ingested_now: int
    ingest_s: float


@dataclass(frozen=True, slots=True)
class ModeRun:
    metrics: dict[str, float]
    latency_ms: dict[str, float]
    per_query: dict[str, dict[str, Any]]


def prepare_corpus(
    settings: Settings, db: Database, runtime: WorkerRuntime, dataset: Dataset, progress: Progress
) -> Corpus:
    """Stage 1: the dataset's documents in line with its tenant's (only what changed is ingested)."""
    tenant = eval_tenant(dataset.name, settings)
    started = time.perf_counter()
    changed = ingest_corpus(db, runtime, dataset, tenant, progress)
    ingest_s = time.perf_counter() - started
    with db.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM chunks WHERE tenant_id = %s", (tenant,)).fetchone()
    return Corpus(tenant, int(row[0]) if row else 0, changed, round(ingest_s, 1))  # type: ignore[call-overload]


def run_modes(
    settings: Settings,
    db: Database,
    runtime: WorkerRuntime,
    dataset: Dataset,
    corpus: Corpus,
    modes: Sequence[str],
    query_ids: Sequence[str],
    progress: Progress,
) -> dict[str, ModeRun]:
    """Stage 2: every query through the retrieval pipeline (or rank_bm25) in each mode, as the tenant's
    ``eval`` group; the queries' vectors are computed once, in batches, before any mode runs."""
    deps = runtime.deps()
    tokenizer = Tokenizer(TokenizerSpec.of(settings))
    cache: dict[str, npt.NDArray[np.float32]] = {}
    pipeline = RetrievalPipeline(
        settings=settings,
        pool=db.pool,
        space=db.space,
        embedder=_PrecomputedEmbedder(deps.embedder, cache),
        tokenizer=tokenizer,
    )
    caller = Caller(corpus.tenant, (GROUP,))
    if any(m in ("vector", "hybrid") for m in modes):
        rewrite = pipeline.rewriter.rewrite
        texts = sorted({rewrite(dataset.queries[q], tenant_id=corpus.tenant).text for q in query_ids})
        progress("embed queries", 0, len(texts))
        for start in range(0, len(texts), 512):
            part = texts[start : start + 512]
            cache.update(zip(part, deps.embedder.embed(part), strict=True))
            progress("embed queries", min(start + 512, len(texts)), len(texts))
    runs: dict[str, ModeRun] = {}
    for mode in modes:
        runner = _rank_bm25_runner(db, corpus.tenant, tokenizer, settings) if mode == "rank_bm25" else None
        per_query: dict[str, Any] = {}
        latencies: list[float] = []
        for n, qid in enumerate(query_ids, start=1):
            t0 = time.perf_counter()
            if runner is not None:
                ranked = runner(dataset.queries[qid])
            else:
                found = pipeline.retrieve(dataset.queries[qid], caller=caller, mode=mode)  # type: ignore[arg-type]
                ranked = _ranked_documents([c.source_uri for c in found.candidates])
            latencies.append((time.perf_counter() - t0) * 1000)
            per_query[qid] = {"ranked": ranked[:100], **query_metrics(ranked, dataset.qrels[qid])}
            if n % 50 == 0 or n == len(query_ids):
                progress(mode, n, len(query_ids))
        latency = {
            "p50": statistics.median(latencies) if latencies else 0.0,
            "p95": float(np.percentile(latencies, 95)) if latencies else 0.0,
        }
        runs[mode] = ModeRun(mean_metrics(list(per_query.values())), latency, per_query)
    return runs


def gate(runs: dict[str, ModeRun], baseline: dict[str, dict[str, float]], tolerance: float) -> list[str]:
    """Stage 3: each metric of each mode the baseline holds, below its baseline value minus ``tolerance``."""
    return [
        f"{mode} {metric} {runs[mode].metrics[metric]:.4f} < baseline {value:.4f} - {tolerance}"
        for mode, metrics in baseline.items()
        if mode in runs
        for metric, value in metrics.items()
        if metric in METRICS and runs[mode].metrics[metric] < value - tolerance
    ]


def run(
    *,
    settings: Settings,
    db: Database,
    dataset: Dataset,
    modes: Sequence[str],
    out: Path,
    baseline_path: Path | None,
    update_baseline: bool,
    tolerance: float,
    max_queries: int | None,
    progress: Progress,
) -> EvalResult:
    """The three stages (corpus, run, gate), then the summary, the per-query files and the reports."""
    unknown = [m for m in modes if m not in EVAL_MODES]
    if unknown:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST, f"unknown mode {unknown[0]!r}", hint=f"use {', '.join(EVAL_MODES)}"
        )
    settings = settings.model_copy(update={"retrieval_arm_k": max(100, settings.retrieval_arm_k)})
    runtime = WorkerRuntime(settings, db)
    corpus = prepare_corpus(settings, db, runtime, dataset, progress)
    query_ids = sorted(dataset.queries)[:max_queries] if max_queries else sorted(dataset.queries)
    runs = run_modes(settings, db, runtime, dataset, corpus, modes, query_ids, progress)
    results = {mode: {"metrics": r.metrics, "latency_ms": r.latency_ms} for mode, r in runs.items()}
    summary: dict[str, Any] = {
        "dataset": dataset.name,
        "documents": len(dataset.corpus),
        "chunks": corpus.chunks,
        "queries": len(query_ids),
        "tenant": corpus.tenant,
        "ingested_now": corpus.ingested_now,
        "ingest_s": corpus.ingest_s,
        "settings": {
            k: getattr(settings, k)
            for k in (
                "embedding_model",
                "bm25_stemmer",
                "bm25_stopwords",
                "bm25_k1",
                "bm25_b",
                "rrf_k",
                "rrf_weight_bm25",
                "rrf_weight_vector",
                "rrf_adaptive",
                "fusion",
                "fusion_alpha",
                "hnsw_ef_search",
                "reranker_model",
            )
        },
        "modes": results,
    }
    if "bm25" in runs and "rank_bm25" in runs:
        ours, theirs = runs["bm25"].per_query, runs["rank_bm25"].per_query
        same = sum(ours[q]["ranked"][:10] == theirs[q]["ranked"][:10] for q in query_ids)
        summary["bm25_matches_rank_bm25_top10"] = f"{same}/{len(query_ids)}"
    baseline = _load_baseline(baseline_path)
    regressions = gate(runs, baseline, tolerance)
    summary["baseline"] = str(baseline_path) if baseline_path and baseline else None
    summary["regressions"] = regressions
    out.mkdir(parents=True, exist_ok=True)
    for mode, mode_run in runs.items():
        (out / f"per_query-{mode}.json").write_text(json.dumps(mode_run.per_query, indent=1) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "report.md").write_text(report.markdown(summary))
    (out / "report.html").write_text(report.html_page(summary, baseline))
    if update_baseline and baseline_path is not None:
        baseline_path.parent.mkdir(parents=True, exist_ok=True)
        merged = baseline | {mode: r.metrics for mode, r in runs.items()}
        baseline_path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return EvalResult(summary, regressions)


def _load_baseline(path: Path | None) -> dict[str, dict[str, float]]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"baseline {path} is not valid JSON: {exc.msg}") from exc
    return {str(mode): {str(k): float(v) for k, v in metrics.items()} for mode, metrics in data.items()}
