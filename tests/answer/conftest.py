"""The answer stage's test harness: an AnswerService on a scripted model, fixed passages, the real
PostgreSQL and the real guardrails, with a policy per tenant that a test may set."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from answer.pipeline import AnswerService
from answer.prompts import load_template
from answer.types import AnswerRecord, AnswerRequest, Event, Finished, Message, Started, Task
from guardrails.answering import AnswerGuardrails
from guardrails.citations import CitationGuard
from guardrails.groundedness import Stage1
from guardrails.policies import load_policy, save_policy
from guardrails.policy import TenantPolicy
from guardrails.sensitive import SensitiveScanner
from retrieval.types import Candidate
from sourcebook.db import Conn
from sourcebook.keys import ensure_tenant
from tests.conftest import make_settings
from tests.doubles import FixedRetriever, Script, ScriptedChatModel, candidate

PASSAGES = [
    candidate(1, "Employees book trains for trips under six hours. Flights need approval."),
    candidate(2, "Laptops are requested through the IT portal.", title="Laptop how-to"),
]
ANSWER = Script(pieces=("Trips", " under", " six", " hours", " go", " by", " train", " [1", "]."), prompt_tokens=120)


@pytest.fixture(scope="module")
def pool(database_url: str) -> Iterator[ConnectionPool[Conn]]:
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True) as opened:
        yield opened


@dataclass
class Harness:
    service: AnswerService
    model: ScriptedChatModel
    retriever: FixedRetriever
    tenant: str
    recorded: list[AnswerRecord] = field(default_factory=list)

    def request(self, *messages: Message) -> AnswerRequest:
        return AnswerRequest(tenant_id=self.tenant, groups=("everyone",), api_key_id=None, messages=messages)

    async def ask(self, *messages: Message) -> list[Event]:
        async with aclosing(self.service.run(self.request(*messages))) as events:
            return [event async for event in events]


Build = Callable[..., Harness]


@pytest.fixture(scope="module")
def guardrails(pool: ConnectionPool[Conn]) -> AnswerGuardrails:
    """The real guardrails, reading each tenant's stored policy as the composition root does."""
    scanner = SensitiveScanner()
    scanner.warm_up()

    def policy(tenant: str) -> TenantPolicy:
        with pool.connection() as conn:
            return load_policy(conn, tenant)

    return AnswerGuardrails(policy=policy, scanner=scanner, stage1=Stage1())


@pytest.fixture
def harness(pool: ConnectionPool[Conn], tmp_path: Path, database_url: str, guardrails: AnswerGuardrails) -> Build:
    def build(
        scripts: dict[Task, Script | Sequence[Script]],
        passages: Sequence[Candidate] = PASSAGES,
        prompt: str = "v3",
        policy: TenantPolicy | None = None,
    ) -> Harness:
        """A service on a one-step prompt (``v3``) unless ``prompt`` names another version."""
        settings = make_settings(tmp_path, database_url=database_url, answer_context_chars=2000)
        tenant = f"svc-{secrets.token_hex(4)}"
        with pool.connection() as conn:
            ensure_tenant(conn, tenant)
            if policy is not None:
                save_policy(conn, tenant_id=tenant, body=policy.to_json(), api_key_id=None)
        model = ScriptedChatModel(scripts)
        retriever = FixedRetriever(list(passages))
        recorded: list[AnswerRecord] = []
        service = AnswerService(
            settings=settings,
            pool=pool,
            retrieval=retriever,
            model=model,
            guardrails=guardrails,
            guards=[CitationGuard()],
            answer_prompt=load_template("answer", prompt),
            rewrite_prompt=load_template("rewrite", settings.rewrite_prompt_version),
            on_record=recorded.append,
        )
        return Harness(service, model, retriever, tenant, recorded)

    return build


def final_record(events: list[Event]) -> AnswerRecord:
    """The stored record of an answer's events, checking they open with Started and close with Finished."""
    assert isinstance(events[0], Started)
    assert isinstance(events[-1], Finished)
    return events[-1].record
