"""Building the answering services once: database pool, embedder, retrieval, model client, prompts.

Used by the API's lifespan and by ``sourcebook ask``; everything it opens is closed by the caller's
exit stack.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, ExitStack

import anyio

from ingest.embed import SentenceTransformerEmbedder
from retrieval.pipeline import RetrievalPipeline
from serving.answer import AnswerService
from serving.api import Services
from serving.guards import CitationGuard
from serving.llm import OpenAIChatModel
from serving.prompts import load_template
from sourcebook.db import Database, open_database
from sourcebook.keys import Principal, verify_key
from sourcebook.models import resolve_model
from sourcebook.settings import Settings


def answer_service(settings: Settings, db: Database, model: OpenAIChatModel) -> tuple[AnswerService, RetrievalPipeline]:
    embedder = SentenceTransformerEmbedder(
        resolve_model(settings.embedding_model, offline=settings.offline),
        device=settings.embedding_device,
        threads=settings.query_embedding_threads,
    )
    embedder.warm_up()
    retrieval = RetrievalPipeline(settings=settings, pool=db.pool, space=db.space, embedder=embedder)
    service = AnswerService(
        settings=settings,
        pool=db.pool,
        retrieval=retrieval,
        model=model,
        guards=[CitationGuard()],
        answer_prompt=load_template("answer", settings.answer_prompt_version, root=settings.prompts_dir),
        rewrite_prompt=load_template("rewrite", settings.rewrite_prompt_version, root=settings.prompts_dir),
    )
    return service, retrieval


def _open(settings: Settings, stack: ExitStack) -> Database:
    return stack.enter_context(open_database(settings))


async def build_services(settings: Settings, stack: AsyncExitStack) -> Services:
    sync_stack = stack.enter_context(ExitStack())
    db = await anyio.to_thread.run_sync(_open, settings, sync_stack)
    model = OpenAIChatModel.from_settings(settings)
    stack.push_async_callback(model.close)
    service, retrieval = await anyio.to_thread.run_sync(answer_service, settings, db, model)
    pepper = settings.key_pepper.get_secret_value()

    def verify(token: str) -> Principal:
        with db.pool.connection() as conn:
            return verify_key(conn, token=token, pepper=pepper)

    return Services(settings, service, retrieval, model, db.pool, verify)
