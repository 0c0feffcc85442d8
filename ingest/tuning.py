"""Retrieval calibration as a job on the ``tuning`` queue (``sourcebook tune retrieval``), and the rule
that queues it by itself after a large ingest (a standing ``sourcebook worker`` runs it).

The job runs in a worker, which already holds the embedder; the questions are written by the answer
model's server (``SOURCEBOOK_LLM_BASE_URL``), or from the chunks' headings when it does not answer.
"""

from __future__ import annotations

import logging
from typing import Any

from procrastinate import App
from procrastinate.exceptions import AlreadyEnqueued

from ingest.store import tune_lock
from retrieval import tuning
from retrieval.calibrate import Calibration, CalibrationInputs, calibrate, recalibrate
from retrieval.glossary import loader as glossary_loader
from retrieval.pipeline import search_params
from retrieval.questions import HeadingQuestionWriter, ModelQuestionWriter
from retrieval.rewrite import RulesRewriter
from retrieval.tokenize import Tokenizer, TokenizerSpec
from retrieval.types import Embedder
from sourcebook.db import Database
from sourcebook.db.connect import scalar
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

log = logging.getLogger(__name__)

TUNE_TASK = "sourcebook.tune_retrieval"
# A batch's documents arrive over a while: the calibration waits for the rest of them.
AUTO_DELAY_S = 60


def calibration_inputs(settings: Settings, db: Database, embedder: Embedder) -> CalibrationInputs:
    """What calibration and reranker training search with: the settings' parameters, before any
    calibration of the tenant."""
    return CalibrationInputs(
        pool=db.pool,
        space=db.space,
        embedder=embedder,
        tokenizer=Tokenizer(TokenizerSpec.of(settings)),
        default=search_params(settings),
        rewriter=RulesRewriter(glossary_loader(db.pool)),  # the rewriter searches use (``RetrievalPipeline``)
    )


def run_calibration(
    settings: Settings,
    db: Database,
    embedder: Any,
    tenant_id: str,
    *,
    model_questions: bool = True,
    reuse_questions: bool = False,
) -> Calibration:
    """Calibrate ``tenant_id`` and store the choice with its figures (in one transaction).
    ``model_questions=False``: the chunks' headings are the questions, without asking the model.
    ``reuse_questions``: choose again on the questions of the tenant's newest calibration."""
    inputs = calibration_inputs(settings, db, embedder)
    if reuse_questions:
        result = _recalibration(db, inputs, tenant_id)
    else:
        writer = ModelQuestionWriter(
            base_url=settings.llm_answer_urls[0],
            model=settings.llm_model,
            api_key=settings.llm_api_key.get_secret_value(),
            timeout_s=settings.llm_request_timeout_s,
        )
        try:
            result = calibrate(
                inputs,
                tenant_id=tenant_id,
                writer=writer if model_questions else HeadingQuestionWriter(),
                fallback=HeadingQuestionWriter(),
                sample_size=settings.tune_questions,
            )
        finally:
            writer.close()
    with db.pool.connection() as conn, conn.transaction():
        tuning.store(
            conn,
            tenant_id=tenant_id,
            tuning=result.tuning,
            figures={**result.figures, "notes": result.notes},
            question_source=result.question_source,
            questions=result.questions,
            chunks=result.chunks,
            kept=result.kept,
        )
    log.info(
        "retrieval calibrated",
        extra={
            "tenant_id": tenant_id,
            "chosen": result.tuning.label(),
            "held_out": result.figures["held_out"],
            "stored_on_held_out": result.figures["stored_on_held_out"],
        },
    )
    return result


def _recalibration(db: Database, inputs: CalibrationInputs, tenant_id: str) -> Calibration:
    with db.pool.connection() as conn:
        stored = tuning.latest(conn, tenant_id)
        questions = tuning.questions_of(conn, stored.id) if stored else []
    if stored is None or not questions:
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"tenant {tenant_id!r} has no calibration with stored questions to choose again on",
            hint=f"run `sourcebook tune retrieval --tenant {tenant_id}` (without --reuse-questions) first",
        )
    return recalibrate(inputs, tenant_id=tenant_id, questions=questions, source=stored.question_source)


def due(settings: Settings, db: Database, tenant_id: str) -> bool:
    """Whether the tenant grew enough since its last calibration (or has enough for a first one)."""
    with db.pool.connection() as conn:
        chunks = int(scalar(conn, "SELECT count(*) FROM chunks WHERE tenant_id = %s", (tenant_id,)))  # type: ignore[call-overload]
        stored = tuning.latest(conn, tenant_id)
    if stored is None:
        return bool(chunks >= settings.tune_after_chunks)
    before = stored.chunks
    return bool(chunks - before >= settings.tune_after_chunks and chunks >= before * (1 + settings.tune_after_growth))


async def defer_tuning(app: App, tenant_id: str, *, delay_s: int = 0) -> int | None:
    """Queue the tenant's calibration (``app`` open); None when one is already waiting."""
    lock = tune_lock(tenant_id)
    try:
        job_id: int = await (
            app.tasks[TUNE_TASK]
            .configure(lock=lock, queueing_lock=lock, schedule_in={"seconds": delay_s})
            .defer_async(tenant_id=tenant_id)
        )
    except AlreadyEnqueued:
        return None
    return job_id
