"""The generation client: OpenAI-compatible endpoints (vLLM), routed by task, with retries, a
circuit breaker per endpoint and fallback to the next endpoint.

For each task (``answer``, ``rewrite``) the endpoints are tried in order. On one endpoint, opening
the stream and reading its first chunk is retried with exponential backoff (tenacity) on connection
errors, timeouts and 5xx; that whole attempt runs through the endpoint's circuit breaker (aiobreaker,
an asyncio port of pybreaker), so an endpoint that keeps failing is skipped at once until its reset
time has passed, and then probed by one call. Once the first chunk has arrived the answer is
committed to that endpoint: a failure later in the stream is ``model_unavailable`` (the caller marks
the answer incomplete), never a silent switch that would repeat the start of the answer.

Deadlines, not multiplied timeouts: a caller states how long it waits for the first token
(``GenerationParams.first_token_s``). Everything before that token (waiting for a free slot, each
attempt, the backoff between them, the next endpoint) happens inside that one deadline, never past
it; an attempt cut by the deadline counts as a failure of its endpoint (the breaker sees it).

Admission: each endpoint admits at most ``llm_max_in_flight`` requests at once (a CPU server slows
every request it takes on, so the rest queue here, within their deadline). An endpoint with a free
slot is preferred to one in the configured order whose slots are all taken.

A client that goes away closes the generator, which closes the HTTP stream, and vLLM aborts the
request.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import cast

import aiobreaker
import anyio
import httpx
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionStreamOptionsParam
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from answer.types import Delta, GenerationParams, Message, Task
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

log = logging.getLogger(__name__)

# httpx errors escape the openai client while a stream is read (a server gone mid-response).
_RETRYABLE = (openai.APIConnectionError, openai.InternalServerError, httpx.TransportError)
# Answers the server gave on purpose: not the endpoint's fault, so they neither trip the breaker
# nor move on to the next endpoint.
_CALLER_ERRORS = (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError)


@dataclass(slots=True)
class Endpoint:
    """One OpenAI-compatible server and the model asked of it (``auto``: the first it serves)."""

    base_url: str
    model: str
    client: openai.AsyncOpenAI
    breaker: aiobreaker.CircuitBreaker
    # None: no cap on requests in flight (a GPU server batches them well).
    slots: anyio.Semaphore | None = field(default=None)
    served: str | None = field(default=None)

    @property
    def state(self) -> str:
        return str(self.breaker.current_state.name).lower()

    def load(self) -> dict[str, int]:
        """Requests in flight and waiting for a slot (only with a cap)."""
        if self.slots is None or self.slots.max_value is None:
            return {}
        return {
            "in_flight": self.slots.max_value - self.slots.value,
            "queued": self.slots.statistics().tasks_waiting,
            "max_in_flight": self.slots.max_value,
        }

    def has_free_slot(self) -> bool:
        return self.slots is None or self.slots.value > 0


def build_endpoints(urls: Sequence[str], model: str, settings: Settings) -> list[Endpoint]:
    timeout = httpx.Timeout(settings.llm_request_timeout_s, connect=settings.llm_timeout_s)
    return [
        Endpoint(
            base_url=url,
            model=model,
            client=openai.AsyncOpenAI(
                base_url=url,
                api_key=settings.llm_api_key.get_secret_value(),
                timeout=timeout,
                max_retries=0,  # tenacity retries, so that backoff and the breaker see every attempt
            ),
            breaker=aiobreaker.CircuitBreaker(
                fail_max=settings.llm_breaker_failures,
                timeout_duration=dt.timedelta(seconds=settings.llm_breaker_reset_s),
                exclude=list(_CALLER_ERRORS),
                name=url,
            ),
            slots=_slots(settings.llm_max_in_flight),
        )
        for url in urls
    ]


def _slots(cap: int) -> anyio.Semaphore | None:
    return anyio.Semaphore(cap, max_value=cap) if cap > 0 else None


class OpenAIChatModel:
    """``ChatModel`` over OpenAI-compatible endpoints, per task."""

    def __init__(self, routes: dict[Task, list[Endpoint]], *, retries: int, backoff_s: float = 0.2) -> None:
        if not all(routes.values()):
            raise SourcebookError(ErrorCode.CONFIG_INVALID, "every generation task needs at least one endpoint")
        self.routes = routes
        self._retries = retries
        self._backoff_s = backoff_s

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIChatModel:
        answer_urls = settings.llm_answer_urls
        if not answer_urls:
            raise SourcebookError(
                ErrorCode.CONFIG_INVALID,
                "SOURCEBOOK_LLM_BASE_URL names no endpoint",
                hint="set it to one or more OpenAI-compatible base URLs, comma-separated",
            )
        answer = build_endpoints(answer_urls, settings.llm_model, settings)
        # The same server and model is one endpoint with one breaker, whatever task it serves.
        shared = {(e.base_url, e.model): e for e in answer}
        rewrite = [
            shared.get((url, settings.llm_rewrite_model))
            or build_endpoints([url], settings.llm_rewrite_model, settings)[0]
            for url in settings.llm_rewrite_urls
        ]
        return cls({"answer": answer, "rewrite": rewrite}, retries=settings.llm_retries)

    def endpoints(self) -> list[Endpoint]:
        seen: dict[str, Endpoint] = {}
        for endpoints in self.routes.values():
            for endpoint in endpoints:
                seen.setdefault(endpoint.base_url + "|" + endpoint.model, endpoint)
        return list(seen.values())

    async def close(self) -> None:
        for endpoint in self.endpoints():
            await endpoint.client.close()

    async def stream(
        self, task: Task, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Delta, None]:
        limit = params.first_token_s
        deadline = math.inf if limit is None else anyio.current_time() + limit
        failures: list[str] = []
        # Stable: the configured order, except that endpoints with a free slot come first.
        for endpoint in sorted(self.routes[task], key=lambda e: not e.has_free_slot()):
            if anyio.current_time() >= deadline:
                failures.append(f"{endpoint.base_url}: not tried, the deadline had passed")
                continue
            if not await _admitted(endpoint, deadline):
                failures.append(f"{endpoint.base_url}: every slot busy until the deadline")
                continue
            try:
                opened = await self._first_chunk(endpoint, messages, params, deadline, failures)
                if opened is None:
                    continue
                async with aclosing(_deltas(*opened, endpoint)) as deltas:
                    async for delta in deltas:
                        yield delta
                return
            finally:
                if endpoint.slots is not None:
                    endpoint.slots.release()
        within = "" if limit is None else f" within {limit:g} s"
        raise SourcebookError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"no model endpoint answered for {task}{within} ({'; '.join(failures)})",
            hint="start the model server (`sourcebook llm serve`) or check SOURCEBOOK_LLM_BASE_URL",
        )

    async def _first_chunk(
        self,
        endpoint: Endpoint,
        messages: Sequence[Message],
        params: GenerationParams,
        deadline: float,
        failures: list[str],
    ) -> tuple[openai.AsyncStream[ChatCompletionChunk], ChatCompletionChunk] | None:
        """The opened stream and its first chunk, or None (the reason appended to ``failures``)."""
        try:
            opened: tuple[openai.AsyncStream[ChatCompletionChunk], ChatCompletionChunk]
            opened = await endpoint.breaker.call_async(self._open, endpoint, messages, params, deadline)
            return opened
        except aiobreaker.CircuitBreakerError:
            failures.append(f"{endpoint.base_url}: circuit open")
        except _CALLER_ERRORS as exc:
            raise SourcebookError(
                ErrorCode.INVALID_REQUEST,
                f"the model server refused the request: {_server_message(exc)}",
                hint="shorten the conversation or lower max_tokens",
            ) from exc
        except TimeoutError:
            failures.append(f"{endpoint.base_url}: no first token before the deadline")
            log.warning("model endpoint missed the deadline", extra={"endpoint": endpoint.base_url})
        except (openai.APIError, httpx.HTTPError, SourcebookError) as exc:
            failures.append(f"{endpoint.base_url}: {type(exc).__name__}")
            log.warning("model endpoint failed", extra={"endpoint": endpoint.base_url, "error": type(exc).__name__})
        return None

    async def _open(
        self, endpoint: Endpoint, messages: Sequence[Message], params: GenerationParams, deadline: float
    ) -> tuple[openai.AsyncStream[ChatCompletionChunk], ChatCompletionChunk]:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_RETRYABLE),
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._backoff_s, max=5),
            reraise=True,
        )
        # TimeoutError, raised here inside the breaker's call, counts as the endpoint's failure.
        with anyio.fail_after(None if deadline == math.inf else max(deadline - anyio.current_time(), 0.0)):
            async for attempt in retrying:
                with attempt:
                    return await _attempt(endpoint, messages, params)
        raise AssertionError("tenacity re-raises the last error")  # pragma: no cover


async def _admitted(endpoint: Endpoint, deadline: float) -> bool:
    """Take one of the endpoint's slots, waiting no later than ``deadline``."""
    if endpoint.slots is None:
        return True
    with anyio.move_on_after(None if deadline == math.inf else deadline - anyio.current_time()):
        await endpoint.slots.acquire()
        return True
    return False


async def _attempt(
    endpoint: Endpoint, messages: Sequence[Message], params: GenerationParams
) -> tuple[openai.AsyncStream[ChatCompletionChunk], ChatCompletionChunk]:
    model = await _model_name(endpoint)
    stream = await endpoint.client.chat.completions.create(
        model=model,
        messages=_wire(messages),
        stream=True,
        # vLLM's continuous usage: every chunk carries the tokens so far, so a stream closed early (the
        # client gone, the answer at its length limit) still counts what it cost.
        stream_options=cast(ChatCompletionStreamOptionsParam, {"include_usage": True, "continuous_usage_stats": True}),
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        stop=list(params.stop) or None,
    )
    try:
        first = await anext(aiter(stream))
    except BaseException:
        await stream.close()
        raise
    return stream, first


async def _model_name(endpoint: Endpoint) -> str:
    if endpoint.model != "auto":
        return endpoint.model
    if endpoint.served is None:
        models = await endpoint.client.models.list()
        if not models.data:
            raise SourcebookError(ErrorCode.MODEL_UNAVAILABLE, f"{endpoint.base_url} serves no model")
        endpoint.served = models.data[0].id
    return endpoint.served


def _wire(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    wire: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message.role == "system":
            wire.append({"role": "system", "content": message.content})
        elif message.role == "user":
            wire.append({"role": "user", "content": message.content})
        else:
            wire.append({"role": "assistant", "content": message.content})
    return wire


def _server_message(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if isinstance(message, str):
            return message[:300]
    return exc.message[:300]


def _delta_of(chunk: ChatCompletionChunk, endpoint: Endpoint) -> Delta:
    text = ""
    finish = None
    if chunk.choices:
        choice = chunk.choices[0]
        text = choice.delta.content or ""
        finish = choice.finish_reason
    usage = chunk.usage
    return Delta(
        text,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        finish_reason=finish,
        model=chunk.model or None,
        endpoint=endpoint.base_url,
    )


async def _deltas(
    stream: openai.AsyncStream[ChatCompletionChunk], first: ChatCompletionChunk, endpoint: Endpoint
) -> AsyncGenerator[Delta, None]:
    try:
        yield _delta_of(first, endpoint)
        async for chunk in stream:
            yield _delta_of(chunk, endpoint)
    except (openai.APIError, httpx.HTTPError) as exc:
        raise SourcebookError(
            ErrorCode.MODEL_UNAVAILABLE, f"the model server at {endpoint.base_url} stopped mid-answer"
        ) from exc
    finally:
        with anyio.CancelScope(shield=True):  # close the HTTP stream even when cancelled: vLLM then aborts
            await stream.close()
