"""Train a tenant's cross-encoder reranker on its own documents (``sourcebook reranker train``).

1. Take the questions of the tenant's newest calibration (``sourcebook tune retrieval`` keeps them):
   the ones its fusion was chosen on are the training questions, the held-out ones judge the result.
2. Search each question as calibration does (rewritten as searches rewrite it, with the tenant's tuned
   hybrid settings, the operator's view; the model is trained and judged on that rewritten text):
   the source chunk is the positive; hard negatives come from both arms, the best by BM25 rank and the
   best by vector rank in turn, never the source.
3. Add general groups (``general``: e.g. HaluEval-QA, which ships in a registry package), whose
   negatives are the passages BM25 ranks highest among the others.
4. Fine-tune a cross-encoder from the bundled MiniLM with a listwise loss: each group is one positive
   and its negatives, scored together, and the loss is the cross-entropy of the positive under a
   softmax over the group. Seeded, so the same inputs train the same model on the same hardware.
5. On the held-out questions, the MRR@10 of the source chunk in the tuned fusion's top candidates and
   after the trained model reorders them (the same code as search, but every candidate scored: the
   model is judged, not the time budget), weighted as calibration weighs them; the paired bootstrap
   interval of the gain. The model is switched on only if its gain is at
   least ``min_gain``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval import tuning as tunings
from retrieval.calibrate import CalibrationInputs, tenant_caller
from retrieval.rerank import CrossEncoderReranker, passage_text
from retrieval.search import SearchParams, search
from retrieval.types import Caller, Candidate
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.models import ModelLocation, resolve_device

Progress = Callable[[str, int, int], None]
METADATA = "sourcebook_reranker.json"
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Group:
    """One training example of the listwise loss: a question, its passage, passages that do not answer it."""

    question: str
    positive: str
    negatives: tuple[str, ...]
    source: str  # "tenant" or the general set's name


@dataclass(frozen=True, slots=True)
class TrainingOptions:
    epochs: int = 2
    negatives: int = 7
    learning_rate: float = 3e-5
    groups_per_step: int = 2
    max_length: int = 256
    candidates: int = 20  # the fused candidates the reranker reorders (SOURCEBOOK_RERANK_CANDIDATES)
    min_gain: float = 0.01
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True, slots=True)
class TrainingInputs:
    search: CalibrationInputs  # searched as calibration searches (the tenant's calibration applied over it)
    base: ModelLocation  # the model fine-tuned from (the bundled MiniLM)


@dataclass(frozen=True, slots=True)
class TrainedModel:
    tenant_id: str
    tuning_id: int
    path: Path
    enabled: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def _negatives(found: Sequence[Candidate], positive: int, count: int) -> list[Candidate]:
    """The best by BM25 rank and the best by vector rank in turn, each once, never the positive."""
    by_bm25 = sorted((c for c in found if c.bm25_rank is not None), key=lambda c: c.bm25_rank or 0)
    by_vector = sorted((c for c in found if c.vector_rank is not None), key=lambda c: c.vector_rank or 0)
    chosen: dict[int, Candidate] = {}
    for i in range(max(len(by_bm25), len(by_vector))):
        for ranked in (by_bm25, by_vector):
            if i < len(ranked) and ranked[i].chunk_id != positive and len(chosen) < count:
                chosen.setdefault(ranked[i].chunk_id, ranked[i])
    return list(chosen.values())


def general_groups(pairs: Sequence[tuple[str, str]], *, negatives: int, name: str) -> list[Group]:
    """Groups from (question, passage) pairs of another set: each passage's negatives are the other
    passages BM25 ranks highest for its question."""
    from rank_bm25 import BM25Okapi

    passages = sorted({p for _, p in pairs})
    index = BM25Okapi([_WORD.findall(p.lower()) for p in passages])
    groups = []
    for question, passage in pairs:
        scores = index.get_scores(_WORD.findall(question.lower()))
        ranked = [passages[i] for i in np.argsort(-scores, kind="stable")[: negatives + 1]]
        groups.append(Group(question, passage, tuple(p for p in ranked if p != passage)[:negatives], name))
    return groups


def _search_all(
    inputs: TrainingInputs,
    caller: Caller,
    params: SearchParams,
    texts: Sequence[str],
    progress: Progress,
) -> list[list[Candidate]]:
    """Each question's fused candidates under the tenant's tuned settings (at least 30); ``texts`` are
    the questions as searches rewrite them."""
    vectors = inputs.search.embedder.embed(list(texts))
    params = dataclasses.replace(params, limit=max(params.limit, 30))
    found = []
    with inputs.search.pool.connection() as conn:
        for n, (text, vector) in enumerate(zip(texts, vectors, strict=True), start=1):
            result = search(
                conn,
                caller=caller,
                mode="hybrid",
                tokenizer=inputs.search.tokenizer,
                query_text=text,
                query_vector=vector,
                space=inputs.search.space,
                params=params,
            )
            found.append(result.candidates)
            progress("searching the questions", n, len(texts))
    return found


def _positives(conn: Conn, chunk_ids: Sequence[int]) -> dict[int, str]:
    rows = conn.execute("SELECT id, text, context FROM chunks WHERE id = ANY(%s)", (list(chunk_ids),)).fetchall()
    return {int(r[0]): passage_text(str(r[1]), r[2]) for r in rows}  # type: ignore[call-overload, arg-type]


def train_model(
    groups: Sequence[Group], base: ModelLocation, out: Path, options: TrainingOptions, progress: Progress
) -> dict[str, Any]:
    """Fine-tune ``base`` on ``groups`` with the listwise loss and save a ``CrossEncoder`` folder at
    ``out`` (written beside it first, then moved into place)."""
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    # The new scoring head is expected, not a warning to print.
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]

    random.seed(options.seed)
    np.random.seed(options.seed)
    torch.manual_seed(options.seed)
    device = resolve_device(options.device)
    tokenizer = AutoTokenizer.from_pretrained(base.load_arg)
    # A bi-encoder's folder gets a new one-logit head; a cross-encoder (e.g. an MS MARCO one) keeps its own,
    # and one with several labels (an NLI model) gets a new one-logit head in place of its classifier.
    model = AutoModelForSequenceClassification.from_pretrained(
        base.load_arg, num_labels=1, ignore_mismatched_sizes=True
    ).to(device)
    model.train()
    order = list(range(len(groups)))
    steps_per_epoch = math.ceil(len(groups) / options.groups_per_step)
    total = steps_per_epoch * options.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, total // 10), total)  # type: ignore[no-untyped-call]
    shuffler = random.Random(options.seed)  # noqa: S311 (a reproducible shuffle, not a secret)
    losses: list[float] = []
    started, step, pairs = time.perf_counter(), 0, 0
    for _ in range(options.epochs):
        shuffler.shuffle(order)
        for start in range(0, len(order), options.groups_per_step):
            batch = [groups[i] for i in order[start : start + options.groups_per_step]]
            questions = [g.question for g in batch for _ in range(1 + len(g.negatives))]
            passages = [p for g in batch for p in (g.positive, *g.negatives)]
            pairs += len(passages)
            encoded = tokenizer(
                questions,
                passages,
                truncation="longest_first",
                max_length=options.max_length,
                padding=True,
                return_tensors="pt",
            ).to(device)
            logits = model(**encoded).logits.view(-1)
            loss = torch.zeros((), device=device)
            offset = 0
            for g in batch:
                size = 1 + len(g.negatives)
                # The positive is first in its group: cross-entropy of index 0 under the group's softmax.
                loss = loss - torch.log_softmax(logits[offset : offset + size], dim=0)[0]
                offset += size
            loss = loss / len(batch)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            progress("training", step, total)
    partial = out.with_name(out.name + ".partial")  # ``out`` is new and unique: so is this
    model.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    seconds = time.perf_counter() - started
    figures = {
        "base": base.name,
        "steps": step,
        "epochs": options.epochs,
        "seconds": round(seconds, 1),
        "pairs_per_s": round(pairs / max(seconds, 1e-9), 1),
        "device": device,
        "loss_first_tenth": round(float(np.mean(losses[: max(1, len(losses) // 10)])), 4),
        "loss_last_tenth": round(float(np.mean(losses[-max(1, len(losses) // 10) :])), 4),
    }
    (partial / METADATA).write_text(json.dumps({**dataclasses.asdict(options), **figures}, indent=2))
    partial.rename(out)
    return figures


def _paired_interval(gains: Sequence[float], weights: Sequence[float], *, seed: int) -> tuple[float, float]:
    """The 90% paired bootstrap interval of the weighted mean gain."""
    rng = np.random.default_rng(seed)
    g, w = np.asarray(gains, float), np.asarray(weights, float)
    draws = rng.integers(0, len(g), size=(2000, len(g)))
    means = (g[draws] * w[draws]).sum(axis=1) / w[draws].sum(axis=1)
    return float(np.quantile(means, 0.05)), float(np.quantile(means, 0.95))


def judge(
    location: ModelLocation,
    held: Sequence[tunings.TunedQuestion],
    texts: Sequence[str],
    found: Sequence[Sequence[Candidate]],
    options: TrainingOptions,
) -> dict[str, Any]:
    """The held-out MRR@10 of the source chunk in the fused order and reordered by the model (which
    scores each question's ``texts``: the question as searches rewrite it)."""
    reranker = CrossEncoderReranker(
        location,
        candidates=options.candidates,
        budget_ms=10**9,
        max_length=options.max_length,
        device=options.device,
    )
    fused, reranked, latencies = [], [], []
    for q, text, candidates in zip(held, texts, found, strict=True):
        fused.append(tunings.reciprocal_rank([c.chunk_id for c in candidates], q.chunk_id))
        outcome = reranker.rerank(text, candidates)
        latencies.append(outcome.elapsed_ms)
        reranked.append(tunings.reciprocal_rank([c.chunk_id for c in outcome.candidates], q.chunk_id))
    weights = [q.weight for q in held]

    def mean(values: Sequence[float], w: Sequence[float] | None = None) -> float:
        w = w or [1.0] * len(values)
        return round(sum(v * x for v, x in zip(values, w, strict=True)) / max(sum(w), 1e-9), 4)

    gains = [r - f for r, f in zip(reranked, fused, strict=True)]
    low, high = _paired_interval(gains, weights, seed=options.seed)
    return {
        "metric": "MRR@10 of the question's source chunk among the tuned fusion's top candidates, held out",
        "held_out": len(held),
        "fusion": mean(fused, weights),
        "reranked": mean(reranked, weights),
        "gain": round(mean(reranked, weights) - mean(fused, weights), 4),
        "gain_interval_90": [round(low, 4), round(high, 4)],
        "plain": {"fusion": mean(fused), "reranked": mean(reranked)},
        "better": sum(g > 0 for g in gains),
        "worse": sum(g < 0 for g in gains),
        "rerank_ms_p50": round(float(np.median(latencies)), 1) if latencies else 0.0,
    }


def train_tenant(
    inputs: TrainingInputs,
    *,
    tenant_id: str,
    out_root: Path,
    general: Callable[[], Sequence[Group]] = lambda: (),
    options: TrainingOptions = TrainingOptions(),
    progress: Progress = lambda what, n, total: None,
) -> TrainedModel:
    """Steps 1–5 above; ``general`` is called once the tenant's questions are found (it may download).
    The caller stores the outcome (``retrieval.rerank.store_trained``)."""
    started = time.perf_counter()
    with inputs.search.pool.connection() as conn:
        if conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is None:
            raise SourcebookError(ErrorCode.NOT_FOUND, f"tenant {tenant_id!r} does not exist")
        stored = tunings.latest(conn, tenant_id)
        kept = tunings.questions_of(conn, stored.id) if stored else []
        caller = tenant_caller(conn, tenant_id)
        positives = _positives(conn, [q.chunk_id for q in kept])
    if stored is None or not kept:
        raise SourcebookError(
            ErrorCode.CONFLICT,
            f"tenant {tenant_id!r} has no calibration with stored questions to train a reranker on",
            hint=f"run `sourcebook tune retrieval --tenant {tenant_id}` first",
        )
    kept = [q for q in kept if q.chunk_id in positives]
    train_questions = [q for q in kept if not q.held_out]
    held = [q for q in kept if q.held_out]
    if len(train_questions) < 10 or len(held) < 5:
        raise SourcebookError(
            ErrorCode.CONFLICT,
            f"the calibration kept {len(train_questions)} training and {len(held)} held-out questions: too few",
            hint="raise SOURCEBOOK_TUNE_QUESTIONS and run `sourcebook tune retrieval` again",
        )
    extra = list(general())
    # The model is trained, judged and used on what searches rerank with: the rewritten question.
    texts = inputs.search.query_texts(tenant_id, [q.question for q in train_questions + held])
    found = _search_all(inputs, caller, stored.tuning.apply(inputs.search.default), texts, progress)
    groups = [
        Group(text, positives[q.chunk_id], tuple(passage_text(c.text, c.context) for c in negs), "tenant")
        for q, text, candidates in zip(train_questions, texts, found, strict=False)
        if (negs := _negatives(candidates, q.chunk_id, options.negatives))
    ]
    out = out_root.resolve() / tenant_id / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        training = train_model([*groups, *extra], inputs.base, out, options, progress)
        split = len(train_questions)
        held_out = judge(
            ModelLocation(f"{tenant_id}/{out.name}", "path", out), held, texts[split:], found[split:], options
        )
    except BaseException:
        # Nothing half-made stays behind: a model that was not judged is never stored.
        shutil.rmtree(out.with_name(out.name + ".partial"), ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        raise
    enabled = held_out["gain"] >= options.min_gain
    reason = (
        f"held-out MRR@10 {held_out['reranked']:.4f} vs the tuned fusion's {held_out['fusion']:.4f} "
        f"({held_out['gain']:+.4f}; {'at least' if enabled else 'below'} the required +{options.min_gain:g})"
    )
    figures = {
        "held_out": held_out,
        "training": {
            **training,
            "groups": {"tenant": len(groups), "general": len(extra)},
            "general_sources": sorted({g.source for g in extra}),
            "negatives": options.negatives,
            "learning_rate": options.learning_rate,
            "max_length": options.max_length,
            "seed": options.seed,
        },
        "calibration": {"id": stored.id, "chosen": stored.tuning.label(), "date": f"{stored.created_at:%Y-%m-%d}"},
        "seconds": round(time.perf_counter() - started, 1),
    }
    return TrainedModel(tenant_id, stored.id, out, enabled, reason, figures)
