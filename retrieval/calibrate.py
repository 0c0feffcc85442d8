"""Calibrate one tenant's retrieval on its own documents (``sourcebook tune retrieval``).

1. Sample chunks of the tenant, ordered by a hash of each chunk's content and a fixed seed: the same
   documents draw the same chunks on any machine, in any ingest order, after any re-ingest.
2. Write one question per chunk (``QuestionWriter``: the local model; headings when it doesn't answer).
3. Keep a question only if it finds its chunk in the top 20 of at least one arm and copies no long span
   of it (``retrieval.questions.keep_question``).
4. Rewrite each kept question as the tenant's searches would (the rules rewriter and the tenant's
   glossary), then run it once through the keyword arm for every (k1, b) of the grid and once through
   the vector arm, 100 candidates each, with the tenant's whole access (the operator's view).
5. Split the questions 70 / 30 by a hash of the chunk's content; on the 70, score every candidate of the grid
   (the SQL's Python twins fuse the same arm lists) by the nDCG@10 of the source chunk, each question
   weighted by the share of its terms that are not its chunk's words (``question_weight``: the model's
   questions copy their chunk, which favours BM25 over what people ask); choose. A choice clearly below
   the default on the 30 (same weights) is dropped for the default; otherwise the way of choosing held
   up on questions it had not seen, and the settings are chosen again the same way on all of them.
6. Report the choice made on the 70%, the default and each arm on the 30 held out, weighted and plain,
   and what the plain nDCG would have chosen; store the final choice with the figures.

``recalibrate`` runs steps 4–6 again on a stored calibration's questions: no model calls, for a new
grid or rule, or documents changed since (questions whose chunk is gone are left out).

nDCG@10 (the target's measure), and the final choice on all the questions: the best of 180 candidates
on ~110 questions is mostly the noise of a few of them. Judged on the real questions of four sets, the
choice on 70% fell below the better arm on one set or another (a different one by MRR@10, by nDCG@10,
and bagged with one seed or another); chosen on all ~160, it stayed above the better arm on all four
(``bench/calibration_choice.py``, README).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg_pool import ConnectionPool

from retrieval import tuning as tunings
from retrieval.questions import copy_share, keep_question, question_weight
from retrieval.search import SearchParams, search
from retrieval.tokenize import Tokenizer
from retrieval.types import Caller, Embedder, Mode, QueryRewriter, QuestionWriter, SampledChunk
from sourcebook.db import Conn
from sourcebook.db.connect import scalar
from sourcebook.db.spaces import EmbeddingSpace
from sourcebook.errors import ErrorCode, SourcebookError

TOP_FOR_KEEPING = 20
HELD_OUT_SHARE = 0.3
# How far below the default, on the held-out questions, a choice may fall and still be kept. ~50 held-out
# questions put an nDCG's or MRR's standard error near 0.03: a choice within 0.01 of the default there is a tie,
# and in a tie the choice made on the larger 70% is the better estimate.
HELD_OUT_TIE = 0.01
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class CalibrationInputs:
    pool: ConnectionPool[Conn]
    space: EmbeddingSpace
    embedder: Embedder
    tokenizer: Tokenizer
    default: SearchParams
    rewriter: QueryRewriter  # what searches rewrite a question with before both arms (and the reranker) see it

    def query_texts(self, tenant_id: str, questions: Sequence[str]) -> list[str]:
        """The questions as the tenant's searches would search them (rewritten as a first turn)."""
        return [self.rewriter.rewrite(q, tenant_id=tenant_id).text for q in questions]


@dataclass(frozen=True, slots=True)
class Calibration:
    tenant_id: str
    tuning: tunings.Tuning
    figures: dict[str, Any]
    question_source: str
    questions: int
    chunks: int
    notes: list[str] = field(default_factory=list)
    kept: list[tunings.TunedQuestion] = field(default_factory=list)  # the usable questions, stored with it


_SAMPLED = (
    "SELECT c.id, c.text, d.title, c.heading_path, c.content_hash FROM chunks c "
    "JOIN documents d ON d.id = c.document_id "
)


def _sampled(rows: Sequence[Any]) -> list[SampledChunk]:
    return [SampledChunk(int(r[0]), str(r[1]), str(r[2] or ""), tuple(r[3] or ()), str(r[4])) for r in rows]


def sample(conn: Conn, tenant_id: str, size: int, seed: int) -> list[SampledChunk]:
    rows = conn.execute(
        _SAMPLED + "WHERE c.tenant_id = %s AND length(c.text) >= 80 "
        # By content, not id: ids follow the order ingest jobs finish in. Equal chunks (the same text in
        # two documents) are ordered by where they are.
        "ORDER BY md5(c.content_hash || %s::text), c.content_hash, d.source_uri, c.ordinal LIMIT %s",
        (tenant_id, seed, size),
    ).fetchall()
    return _sampled(rows)


def chunks_by_id(conn: Conn, tenant_id: str, ids: Sequence[int]) -> dict[int, SampledChunk]:
    """The tenant's chunks among ``ids`` that still exist (a re-ingest may have replaced some)."""
    rows = conn.execute(_SAMPLED + "WHERE c.tenant_id = %s AND c.id = ANY(%s)", (tenant_id, list(ids))).fetchall()
    return {c.chunk_id: c for c in _sampled(rows)}


def beaten_on_held_out(held_chosen: float, held_default: float) -> bool:
    """Whether the default beats the choice on the held-out questions by more than a tie."""
    return held_chosen < held_default - HELD_OUT_TIE


def tenant_caller(conn: Conn, tenant_id: str) -> Caller:
    row = conn.execute(
        "SELECT coalesce(array_agg(DISTINCT g), '{}') FROM chunks, unnest(acl_groups) g WHERE tenant_id = %s",
        (tenant_id,),
    ).fetchone()
    groups: list[str] = list(row[0]) if row else []  # type: ignore[call-overload]
    return Caller(tenant_id, tuple(sorted(groups)))


def held_out(chunk: SampledChunk) -> bool:
    """Whether the question about ``chunk`` is one of the ~30% held out (by a hash of its content)."""
    digest = hashlib.sha256(f"calibration:{chunk.content_hash}".encode()).digest()
    return digest[0] < 256 * HELD_OUT_SHARE


def _arm(
    conn: Conn, inputs: CalibrationInputs, caller: Caller, text: str, vector: Any, params: SearchParams, mode: Mode
) -> list[tuple[int, float]]:
    found = search(
        conn,
        caller=caller,
        mode=mode,
        tokenizer=inputs.tokenizer,
        query_text=text,
        query_vector=vector,
        space=inputs.space,
        params=params,
    ).candidates
    if mode == "bm25":
        return [(c.chunk_id, float(c.bm25_score or 0.0)) for c in found]
    return [(c.chunk_id, float(c.vector_distance or 0.0)) for c in found]


def _write(
    writer: QuestionWriter, fallback: QuestionWriter, chunks: Sequence[SampledChunk], notes: list[str]
) -> tuple[str, list[str | None]]:
    try:
        return writer.name, writer.write(chunks)
    except SourcebookError as exc:
        if exc.code is not ErrorCode.MODEL_UNAVAILABLE:
            raise
        notes.append(f"no model server answered ({exc.message}): questions from the chunks' headings")
        return fallback.name, fallback.write(chunks)


def arm_lists(
    inputs: CalibrationInputs,
    caller: Caller,
    questions: Sequence[str],
    settings_grid: Sequence[tuple[float, float]],
    base: SearchParams,
    progress: Progress,
) -> tunings.Arms:
    """Per (k1, b): each question's keyword arm beside its vector arm (the same for every (k1, b))."""
    vectors = inputs.embedder.embed(list(questions)) if questions else np.zeros((0, inputs.space.dim), np.float32)
    arms: dict[tuple[float, float], list[tuple[tunings.ArmList, tunings.ArmList]]] = {kb: [] for kb in settings_grid}
    with inputs.pool.connection() as conn:
        dense = []
        for n, (question, vector) in enumerate(zip(questions, vectors, strict=True), start=1):
            dense.append(_arm(conn, inputs, caller, question, vector, base, "vector"))
            progress("vector arm", n, len(questions))
        for i, (k1, b) in enumerate(settings_grid, start=1):
            params = dataclasses.replace(base, k1=k1, b=b)
            for j, question in enumerate(questions):
                arms[(k1, b)].append((_arm(conn, inputs, caller, question, None, params, "bm25"), dense[j]))
            progress("keyword arm settings", i, len(settings_grid))
    return arms


def calibrate(
    inputs: CalibrationInputs,
    *,
    tenant_id: str,
    writer: QuestionWriter,
    fallback: QuestionWriter,
    sample_size: int = 200,
    seed: int = 0,
    progress: Progress = lambda what, n, total: None,
) -> Calibration:
    """Choose the tenant's fusion and BM25 settings by the nDCG@10 of synthetic questions (steps above)."""
    started, notes = time.perf_counter(), list[str]()
    with inputs.pool.connection() as conn:
        chunks = sample(conn, tenant_id, sample_size, seed)
    if not chunks:
        raise SourcebookError(
            ErrorCode.NOT_FOUND, f"tenant {tenant_id!r} has no chunks to calibrate on", hint="ingest documents first"
        )
    progress("questions", 0, len(chunks))
    source, written = _write(writer, fallback, chunks, notes)
    kept = [(c, q) for c, q in ((c, keep_question(q, c.text)) for c, q in zip(chunks, written, strict=True)) if q]
    progress("questions", len(chunks), len(chunks))
    counts = {"sampled": len(chunks), "written": sum(q is not None for q in written), "kept": len(kept)}
    calls = int(getattr(writer, "calls", 0))
    return _choose(inputs, tenant_id, kept, counts, source, notes, started, calls, progress)


def recalibrate(
    inputs: CalibrationInputs,
    *,
    tenant_id: str,
    questions: Sequence[tunings.TunedQuestion],
    source: str,
    progress: Progress = lambda what, n, total: None,
) -> Calibration:
    """Choose again on a stored calibration's questions (steps 4–6; no model calls)."""
    started = time.perf_counter()
    with inputs.pool.connection() as conn:
        found = chunks_by_id(conn, tenant_id, [q.chunk_id for q in questions])
    kept = [(found[q.chunk_id], q.question) for q in questions if q.chunk_id in found]
    notes = [f"the {len(kept)} stored questions of an earlier calibration, reused (no model calls)"]
    if len(kept) < len(questions):
        notes.append(f"{len(questions) - len(kept)} stored questions left out: their chunks are gone")
    counts = {"sampled": len(questions), "written": len(questions), "kept": len(kept)}
    return _choose(inputs, tenant_id, kept, counts, source, notes, started, 0, progress)


def _choose(
    inputs: CalibrationInputs,
    tenant_id: str,
    kept: Sequence[tuple[SampledChunk, str]],
    counts: dict[str, int],
    source: str,
    notes: list[str],
    started: float,
    model_calls: int,
    progress: Progress,
) -> Calibration:
    """Steps 3–6 on the kept questions: the retrieval filter, the split, the choice and its figures."""
    default = tunings.Tuning.of(inputs.default)
    base = dataclasses.replace(inputs.default, arm_k=tunings.ARM_K, limit=tunings.ARM_K)
    with inputs.pool.connection() as conn:
        caller = tenant_caller(conn, tenant_id)
        total_chunks = int(scalar(conn, "SELECT count(*) FROM chunks WHERE tenant_id = %s", (tenant_id,)))  # type: ignore[call-overload]
    if not caller.groups:
        raise SourcebookError(
            ErrorCode.NOT_FOUND, f"tenant {tenant_id!r} has no chunks to calibrate on", hint="ingest documents first"
        )
    settings_grid = sorted({(t.k1, t.b) for t in tunings.grid(default)})
    arms = arm_lists(inputs, caller, inputs.query_texts(tenant_id, [q for _, q in kept]), settings_grid, base, progress)
    # Step 3's retrieval filter, on the default settings' arms.
    usable = [
        i
        for i, (chunk, _) in enumerate(kept)
        if any(chunk.chunk_id in [cid for cid, _ in arm[:TOP_FOR_KEEPING]] for arm in arms[(default.k1, default.b)][i])
    ]
    sources = [c.chunk_id for c, _ in kept]
    held_flags = [held_out(c) for c, _ in kept]
    held = [i for i in usable if held_flags[i]]
    chose_on = [i for i in usable if not held_flags[i]]
    if len(chose_on) < 10 or len(held) < 5:
        raise SourcebookError(
            ErrorCode.CONFLICT,
            f"only {len(usable)} usable questions from {counts['sampled']} sampled chunks: too few to choose settings",
            hint="ingest more documents, or raise SOURCEBOOK_TUNE_QUESTIONS",
        )
    shares = [copy_share(q, c.text, inputs.tokenizer) for c, q in kept]
    weights = [question_weight(share) for share in shares]
    candidates = tunings.grid(default)

    arms_alone = [_only(default, alpha=1.0), _only(default, alpha=0.0)]  # the grid's only at its (k1, b)
    values = {
        t: tunings.question_values(
            t, range(len(kept)), arms, lambda i, order: tunings.ndcg_at_10(order, sources[i]), rrf_k=base.rrf_k
        )
        for t in dict.fromkeys([*candidates, *arms_alone])
    }

    def ndcg(t: tunings.Tuning, questions: Sequence[int], weighted: bool = True) -> float:
        chosen_weights = [weights[i] for i in questions] if weighted else None
        return tunings.weighted_mean([values[t][i] for i in questions], chosen_weights)

    train = {t: ndcg(t, chose_on) for t in candidates}
    validated = tunings.choose(train, default)
    held_chosen, held_default = ndcg(validated, held), ndcg(default, held)
    if beaten_on_held_out(held_chosen, held_default):
        # A choice that clearly loses to the default on the questions it was not chosen on is noise, not a fit.
        notes.append(
            f"{validated.label()} was best where chosen but below the default on the held-out questions by more "
            f"than {HELD_OUT_TIE:g} (weighted nDCG@10 {held_chosen:.4f} < {held_default:.4f}): the default is kept"
        )
        chosen = default
    else:
        # The way of choosing held up on questions it had not seen: choose again on all of them.
        chosen = tunings.choose({t: ndcg(t, usable) for t in candidates}, default)
    figures = _figures(default, validated, ndcg, chose_on, held)
    figures["chosen"] = chosen.label()
    figures["validated"] = validated.label()  # chosen on the 70%, the held-out figures' "chosen"
    figures["default_kept"] = chosen == default and validated != default
    reciprocal = tunings.question_values(
        chosen, held, arms, lambda i, order: tunings.reciprocal_rank(order, sources[i]), rrf_k=base.rrf_k
    )
    figures["stored_on_held_out"] = {  # not a held-out figure when chosen again on all the questions
        "ndcg@10": round(ndcg(chosen, held), 4),
        "mrr@10": round(tunings.weighted_mean(reciprocal, [weights[i] for i in held]), 4),
    }
    plain = tunings.choose({t: ndcg(t, usable, weighted=False) for t in candidates}, default)
    copied = [shares[i] for i in usable]
    figures["unweighted"] = {
        "chosen": plain.label(),
        "all_usable": {
            n: round(ndcg(t, usable, weighted=False), 4) for n, t in (("chosen", plain), ("default", default))
        },
    }
    figures["copy_share"] = {
        "mean": round(float(np.mean(copied)), 4),
        "median": round(float(np.median(copied)), 4),
        "note": "share of a question's terms that are its chunk's words; questions weigh 1 - it (at least 0.1)",
    }
    figures |= {
        "questions": {**counts, "usable": len(usable), "chosen_on": len(chose_on), "held_out": len(held)},
        "candidates": len(candidates),
        "seconds": round(time.perf_counter() - started, 1),
        "model_calls": model_calls,
    }
    figures["per_1000_chunks"] = {"seconds": round(figures["seconds"] * 1000 / max(total_chunks, 1), 1)}
    kept_questions = [
        tunings.TunedQuestion(sources[i], kept[i][1], held_flags[i], round(weights[i], 4)) for i in usable
    ]
    return Calibration(tenant_id, chosen, figures, source, len(usable), total_chunks, notes, kept_questions)


def _figures(
    default: tunings.Tuning,
    validated: tunings.Tuning,
    ndcg: Callable[[tunings.Tuning, Sequence[int], bool], float],
    chose_on: Sequence[int],
    held: Sequence[int],
) -> dict[str, Any]:
    """nDCG@10 of the choice made on the 70%, the default settings and each arm: held out (weighted as
    chosen, and plain) and where chosen (weighted)."""
    named = (
        ("chosen", validated),
        ("default", default),
        ("bm25", _only(default, alpha=1.0)),
        ("vector", _only(default, alpha=0.0)),
    )
    return {
        "metric": "nDCG@10 of the question's source chunk, each question weighted by the share of its terms not in it",
        "measure": "nDCG@10",
        "held_out": {n: round(ndcg(t, held, True), 4) for n, t in named},
        "held_out_plain": {n: round(ndcg(t, held, False), 4) for n, t in named},
        "chosen_on": {n: round(ndcg(t, chose_on, True), 4) for n, t in named},
        "default": default.label(),
    }


def _only(default: tunings.Tuning, *, alpha: float) -> tunings.Tuning:
    return tunings.Tuning("convex", alpha, default.weight_bm25, default.weight_vector, default.k1, default.b)
