"""Building the answering services once: database pool, embedder, retrieval, model client, prompts.

Used by the API's lifespan and by ``sourcebook ask``; everything it opens is closed by the caller's
exit stack.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, ExitStack
from functools import partial

import anyio
from prometheus_client import CollectorRegistry

from answer.generator import OpenAIChatModel
from answer.pipeline import AnswerService
from answer.prompts import Neutraliser, load_template, special_tokens
from answer.types import AnswerRecord
from guardrails.answering import AnswerGuardrails
from guardrails.citations import CitationGuard
from guardrails.classifier import InjectionClassifier, model_path
from guardrails.groundedness import SentenceEncoder, Stage1
from guardrails.judge import Judge, JudgeSettings
from guardrails.policies import load_policy
from guardrails.policy import TenantPolicy
from guardrails.sensitive import SensitiveScanner
from ingest.embed import query_embedder
from ingest.jobs import build_app
from ingest.uploads import Uploads
from retrieval.pipeline import RetrievalPipeline
from serving.deps import Services
from serving.metrics import DeploymentCollector, Metrics
from serving.ratelimit import PostgresStorage, RateLimiter
from sourcebook.db import Database, open_database
from sourcebook.keys import Principal, verify_key
from sourcebook.llm.supervisor import measured_context_chars
from sourcebook.settings import Settings

log = logging.getLogger(__name__)


def answer_service(
    settings: Settings,
    db: Database,
    model: OpenAIChatModel,
    on_record: Callable[[AnswerRecord], None] | None = None,
) -> tuple[AnswerService, RetrievalPipeline]:
    embedder = query_embedder(settings)
    embedder.warm_up()
    retrieval = RetrievalPipeline(settings=settings, pool=db.pool, space=db.space, embedder=embedder)
    # The served models come from these folders (`sourcebook models prepare`): their tokenizers list
    # the special tokens that text must not smuggle into a prompt.
    folders = sorted(p for p in settings.models_dir.glob("*") if p.is_dir()) if settings.models_dir.is_dir() else []
    clean = Neutraliser(special_tokens(folders))
    budget = _every(30.0, partial(measured_context_chars, settings))
    service = AnswerService(
        settings=settings,
        pool=db.pool,
        retrieval=retrieval,
        model=model,
        guardrails=guardrails(settings, db, embedder),
        guards=[CitationGuard()],
        answer_prompt=load_template(
            "answer", settings.answer_prompt_version, root=settings.prompts_dir, neutralise=clean
        ),
        rewrite_prompt=load_template(
            "rewrite", settings.rewrite_prompt_version, root=settings.prompts_dir, neutralise=clean
        ),
        on_record=on_record,
        context_chars=budget,
    )
    return service, retrieval


def guardrails(settings: Settings, db: Database, encoder: SentenceEncoder) -> AnswerGuardrails:
    """The guards around every answer: the scanners warmed up, the injection classifier when it has
    been trained (`sourcebook guard train`; the rules alone until then, and the log says so)."""
    scanner = SensitiveScanner()
    scanner.warm_up()
    path = model_path(settings.data_dir)
    scorer = InjectionClassifier.load(path) if path.is_file() else None
    if scorer is None:
        log.warning("no injection classifier yet: questions are checked by the rules alone (sourcebook guard train)")
    judge = None
    if settings.guard_judge and settings.llm_answer_urls:
        judge = Judge(JudgeSettings(settings.llm_answer_urls[0], settings.llm_model))
    return AnswerGuardrails(
        judge=judge,
        policy=partial(_stored_policy, db),
        scanner=scanner,
        stage1=Stage1(),
        scorer=scorer,
        encoder=encoder,
    )


def _stored_policy(db: Database, tenant_id: str) -> TenantPolicy:
    with db.pool.connection() as conn:
        return load_policy(conn, tenant_id)


def _every(seconds: float, compute: Callable[[], int]) -> Callable[[], int]:
    """``compute`` again at most every ``seconds``: the budget follows a restarted server's speed
    without reading its status file on every answer."""
    cached: list[tuple[float, int]] = []

    def value() -> int:
        now = time.monotonic()
        if not cached or now - cached[0][0] > seconds:
            cached[:] = [(now, compute())]
        return cached[0][1]

    return value


def _open(settings: Settings, stack: ExitStack) -> Database:
    return stack.enter_context(open_database(settings))


async def build_services(settings: Settings, stack: AsyncExitStack, metrics: Metrics | None = None) -> Services:
    """Everything the API (and `sourcebook ask`) needs; ``metrics`` defaults to a private registry."""
    metrics = metrics or Metrics(CollectorRegistry())
    sync_stack = stack.enter_context(ExitStack())
    db = await anyio.to_thread.run_sync(_open, settings, sync_stack)
    model = OpenAIChatModel.from_settings(settings)
    stack.push_async_callback(model.close)
    limiter = RateLimiter(settings, PostgresStorage(db.pool)) if settings.rate_limits_enabled else None

    def recorded(record: AnswerRecord) -> None:
        """Every stored answer, finished or abandoned: metrics, and its tokens against the key's limit."""
        metrics.observe_answer(record, cache_enabled=settings.answer_cache)
        if limiter is not None and record.api_key_id is not None:
            limiter.spend_tokens(record.tenant_id, record.api_key_id, record.prompt_tokens + record.completion_tokens)

    service, retrieval = await anyio.to_thread.run_sync(answer_service, settings, db, model, recorded)
    pepper = settings.key_pepper.get_secret_value()

    def verify(token: str) -> Principal:
        with db.pool.connection() as conn:
            return verify_key(conn, token=token, pepper=pepper)

    jobs = build_app(settings, db.url)
    await stack.enter_async_context(jobs.open_async())
    endpoints = list({id(e): e for route in model.routes.values() for e in route}.values())
    metrics.registry.register(DeploymentCollector(db.pool, lambda: endpoints))
    uploads = Uploads(settings, db.pool, jobs)
    return Services(settings, service, retrieval, model, db.pool, verify, limiter, metrics, uploads)
