"""rewrite → embed the query → hybrid SQL → rerank → context selection, as plain calls."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import regex
from psycopg_pool import ConnectionPool

from retrieval.glossary import loader as glossary_loader
from retrieval.rerank import CrossEncoderReranker, NoReranker, latest_trained
from retrieval.rewrite import RulesRewriter
from retrieval.search import SearchParams, search
from retrieval.select import select_context
from retrieval.tokenize import Tokenizer, TokenizerSpec
from retrieval.tuning import StoredTuning, Tuning, index_version
from retrieval.tuning import latest as latest_tuning
from retrieval.types import Caller, Candidate, Embedder, Filters, Mode, QueryRewriter, Reranker, Rewrite
from sourcebook.db import Conn
from sourcebook.db.spaces import EmbeddingSpace
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.models import ModelLocation, resolve_model
from sourcebook.settings import Settings
from sourcebook.telemetry import stage

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 4000
_CONTROL = regex.compile(r"[\p{Cc}\p{Cs}]")  # NUL and other control characters, lone surrogates


@dataclass(frozen=True, slots=True)
class Retrieval:
    """The passages for a question, and how they were found (for --explain and provenance)."""

    rewrite: Rewrite
    mode: Mode
    passages: list[Candidate]
    candidates: list[Candidate]
    terms: list[str]
    vector_plan: str
    reranker: str
    reranked: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    tuning: str = ""  # the fusion and BM25 settings searched with, and where they came from


def without_control(text: str) -> str:
    """Control characters (NUL among them) as spaces."""
    return str(_CONTROL.sub(" ", text))


def clean_query(text: str, *, what: str = "query") -> str:
    """Control characters out, whitespace trimmed; empty or over ``MAX_QUERY_CHARS`` is a clear error."""
    text = without_control(text).strip()
    if not text:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"the {what} is empty", hint="ask a question")
    if len(text) > MAX_QUERY_CHARS:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            f"the {what} is {len(text):,} characters long; the limit is {MAX_QUERY_CHARS:,}",
            hint="shorten the question",
        )
    return text


def search_params(settings: Settings, *, limit: int | None = None) -> SearchParams:
    return SearchParams(
        k1=settings.bm25_k1,
        b=settings.bm25_b,
        epsilon=settings.bm25_epsilon,
        arm_k=settings.retrieval_arm_k,
        rrf_k=settings.rrf_k,
        weight_bm25=settings.rrf_weight_bm25,
        weight_vector=settings.rrf_weight_vector,
        adaptive=settings.rrf_adaptive,
        fusion=settings.fusion,
        alpha=settings.fusion_alpha,
        ef_search=settings.hnsw_ef_search,
        exact_max_rows=settings.vector_exact_max_rows,
        timeout_ms=settings.search_timeout_ms,
        limit=limit or settings.retrieval_arm_k,
    )


def build_reranker(settings: Settings) -> Reranker:
    if settings.reranker_model.strip().lower() in {"", "none"}:
        return NoReranker()
    return CrossEncoderReranker(
        resolve_model(settings.reranker_model, offline=settings.offline),
        candidates=settings.rerank_candidates,
        budget_ms=settings.rerank_budget_ms,
        max_length=settings.rerank_max_length,
        device=settings.embedding_device,
    )


class RetrievalPipeline:
    def __init__(
        self,
        *,
        settings: Settings,
        pool: ConnectionPool[Conn],
        space: EmbeddingSpace,
        embedder: Embedder,
        rewriter: QueryRewriter | None = None,
        reranker: Reranker | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        self.settings = settings
        self._pool = pool
        self._space = space
        self._embedder = embedder
        self.rewriter = rewriter or RulesRewriter(glossary_loader(pool))
        self.reranker = reranker or build_reranker(settings)
        self.tokenizer = tokenizer or Tokenizer(TokenizerSpec.of(settings))
        if isinstance(self.reranker, NoReranker):
            log.info("no reranker configured: the fused order is final (set SOURCEBOOK_RERANKER_MODEL)")
        # Per tenant, with the tenant's index_version they were read at: storing a calibration or switching
        # a trained reranker bumps it (as does every document change), so a running process never
        # searches with settings older than the answers it caches.
        self._tunings: dict[str, tuple[int, StoredTuning | None]] = {}
        self._trained: dict[str, tuple[int, Reranker]] = {}
        self._loaded: dict[str, tuple[str, Reranker]] = {}  # per tenant: its model's folder, the model

    def _params(self, conn: Conn, tenant_id: str, version: int) -> tuple[SearchParams, str]:
        """The settings' search parameters, with the tenant's calibrated fusion and BM25 settings over
        them when it has some (read again whenever the tenant's ``index_version`` moved)."""
        params = search_params(self.settings)
        if not self.settings.retrieval_tuned:
            return params, f"{Tuning.of(params).label()} (settings; calibration off)"
        cached = self._tunings.get(tenant_id)
        if cached is None or cached[0] != version:
            cached = (version, latest_tuning(conn, tenant_id))
            self._tunings[tenant_id] = cached
        stored = cached[1]
        if stored is None:
            return params, f"{Tuning.of(params).label()} (settings)"
        return stored.tuning.apply(params), f"{stored.tuning.label()} (calibrated {stored.created_at:%Y-%m-%d})"

    def _reranker(self, conn: Conn, tenant_id: str, version: int) -> Reranker:
        """The tenant's newest trained reranker when it is switched on, else the configured one. The row
        is read again whenever the tenant's ``index_version`` moved, and its model loaded once; a model
        that cannot be loaded (its folder gone, or only on another machine) is logged and the configured
        one used."""
        if not self.settings.tenant_rerankers:
            return self.reranker
        cached = self._trained.get(tenant_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        trained = latest_trained(conn, tenant_id)
        chosen: Reranker = self.reranker
        if trained is not None and trained.enabled:
            loaded = self._loaded.get(tenant_id)
            if loaded is not None and loaded[0] == trained.model_path:
                chosen = loaded[1]
            else:
                model = CrossEncoderReranker(
                    ModelLocation(trained.name, "path", Path(trained.model_path)),
                    candidates=self.settings.rerank_candidates,
                    budget_ms=self.settings.rerank_budget_ms,
                    max_length=self.settings.rerank_max_length,
                    device=self.settings.embedding_device,
                )
                try:
                    model.warm_up()
                except SourcebookError as exc:
                    log.warning(
                        "the tenant's trained reranker cannot be loaded: searching with the configured one",
                        extra={"tenant_id": tenant_id, "reranker": trained.name, "error": exc.message},
                    )
                else:
                    self._loaded[tenant_id] = (trained.model_path, model)  # replaces the tenant's older one
                    chosen = model
        self._trained[tenant_id] = (version, chosen)
        return chosen

    def retrieve(
        self,
        question: str,
        *,
        caller: Caller,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        history: Sequence[tuple[str, str]] = (),
        top_k: int | None = None,
        rerank: bool = True,
    ) -> Retrieval:
        question = clean_query(question)
        timings: dict[str, float] = {}
        with stage("rewrite", timings):
            rewrite = self.rewriter.rewrite(question, tenant_id=caller.tenant_id, history=history)
        vector = None
        if mode != "bm25":
            with stage("embed", timings):
                vector = self._embedder.embed([rewrite.text])[0]
        # One SQL statement runs the keyword arm, the vector arm and their fusion, so they share a span.
        with (
            stage("search", timings, attributes={"sourcebook.search.arms": "keyword+vector+fuse", "mode": mode}),
            self._pool.connection() as conn,
        ):
            version = index_version(conn, caller.tenant_id)
            params, tuning = self._params(conn, caller.tenant_id, version)
            reranker = self._reranker(conn, caller.tenant_id, version) if rerank else self.reranker
            result = search(
                conn,
                caller=caller,
                mode=mode,
                tokenizer=self.tokenizer,
                query_text=rewrite.text,
                query_vector=vector,
                space=self._space,
                params=params,
                filters=filters,
            )
        candidates = result.candidates
        reranked = 0
        if rerank and candidates:
            with stage("rerank", timings):
                outcome = reranker.rerank(rewrite.text, candidates)
            candidates, reranked = list(outcome.candidates), outcome.reranked
        with stage("select", timings):
            passages = select_context(
                candidates,
                top_k=top_k or self.settings.retrieval_top_k,
                per_document=self.settings.max_chunks_per_document,
                near_duplicate=self.settings.near_duplicate_jaccard,
            )
        return Retrieval(
            rewrite,
            mode,
            passages,
            candidates,
            result.terms,
            result.vector_plan,
            reranker.name,
            reranked,
            timings,
            tuning,
        )
