"""Synthetic questions for calibrating a tenant's retrieval: what each sampled chunk answers.

``ModelQuestionWriter`` asks the local model, the InPars / Promptagator recipe: a few-shot prompt that
asks for one question the passage answers, in the asker's words. ``HeadingQuestionWriter`` is the
fallback when no model server answers: a chunk's own section heading (or its document's title) is
its question, as an FAQ's headings are. ``keep_question`` filters what either wrote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import httpx

from retrieval.tokenize import Tokenizer
from retrieval.types import SampledChunk
from sourcebook.errors import ErrorCode, SourcebookError

# A question that repeats this many consecutive words of its chunk copies it instead of asking.
COPY_SPAN_WORDS = 6
# The least a kept question counts for when settings are chosen (``question_weight``).
MIN_QUESTION_WEIGHT = 0.1
MIN_WORDS, MAX_WORDS = 3, 40
_WORD = re.compile(r"\w+", re.UNICODE)
_INSTRUCTIONS = (
    "You write the questions employees type into a search box. Given a passage from a company "
    "document, write ONE question that the passage answers. Use your own words: do not copy phrases "
    "from the passage. Reply with the question only."
)
# Two worked examples (InPars uses a handful; two keep the CPU prompt short).
_EXAMPLES = (
    (
        "Employees may carry over up to five unused vacation days into the next calendar year. Days "
        "carried over must be used by March 31 or they expire.",
        "Until when can I use vacation days left over from last year?",
    ),
    (
        "To reset a forgotten VPN password, open the self-service portal, choose 'Network access', and "
        "confirm the code sent to your registered phone.",
        "How do I get a new VPN password if I forgot mine?",
    ),
)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def copies_span(question: str, passage: str, *, span: int = COPY_SPAN_WORDS) -> bool:
    """True when ``question`` repeats ``span`` consecutive words of ``passage`` (pure)."""
    words, source = _words(question), " ".join(_words(passage))
    return any(" ".join(words[i : i + span]) in source for i in range(len(words) - span + 1))


def copy_share(question: str, passage: str, tokenizer: Tokenizer) -> float:
    """The share of ``question``'s distinct keyword terms (stemmed, stop-words out) that ``passage``
    has: 1.0 when every term it searches with is the chunk's own word, which hands BM25 the match."""
    asked = set(tokenizer.tokens(question))
    return len(asked & set(tokenizer.tokens(passage))) / len(asked) if asked else 1.0


def question_weight(share: float) -> float:
    """How much a synthetic question counts when settings are chosen, from its ``copy_share``: the
    share of its terms that are not its chunk's words, at least ``MIN_QUESTION_WEIGHT``. Model-written
    questions copy their chunk more than people's questions do, which favours BM25; the questions
    that copy least stand closest to people's."""
    return max(MIN_QUESTION_WEIGHT, 1.0 - share)


def keep_question(question: str | None, passage: str) -> str | None:
    """The question cleaned, or None when it is too short, too long or copies the passage."""
    if not question:
        return None
    text = " ".join(question.strip().strip('"').split())
    if not MIN_WORDS <= len(_words(text)) <= MAX_WORDS or copies_span(text, passage):
        return None
    return text


class HeadingQuestionWriter:
    """The chunk's innermost heading, else its document's title: no model needed."""

    name = "headings"

    def write(self, chunks: Sequence[SampledChunk]) -> list[str | None]:
        out: list[str | None] = []
        for chunk in chunks:
            heading = next((h for h in reversed(chunk.heading_path) if len(_words(h)) >= 2), "")
            out.append(heading or (chunk.title if len(_words(chunk.title)) >= 2 else None))
        return out


class ModelQuestionWriter:
    """One few-shot chat completion per chunk from an OpenAI-compatible server (the local vLLM)."""

    name = "model"

    def __init__(self, *, base_url: str, model: str, api_key: str, timeout_s: float, max_chars: int = 1200) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._max_chars = max_chars
        self.calls = 0

    def _messages(self, passage: str) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": _INSTRUCTIONS}]
        for example, question in _EXAMPLES:
            messages += [{"role": "user", "content": f"Passage: {example}"}, {"role": "assistant", "content": question}]
        return [*messages, {"role": "user", "content": f"Passage: {passage[: self._max_chars]}"}]

    def _model_name(self) -> str:
        if self._model != "auto":
            return self._model
        models = self._client.get("/models", headers=self._headers).raise_for_status().json()["data"]
        self._model = str(models[0]["id"])
        return self._model

    def write(self, chunks: Sequence[SampledChunk]) -> list[str | None]:
        """Raises ``model_unavailable`` when the server does not answer the first request."""
        out: list[str | None] = []
        for n, chunk in enumerate(chunks):
            try:
                body = {
                    "model": self._model_name(),
                    "messages": self._messages(chunk.text),
                    "max_tokens": 48,
                    "temperature": 0.0,
                }
                reply = self._client.post("/chat/completions", json=body, headers=self._headers).raise_for_status()
                self.calls += 1
                out.append(str(reply.json()["choices"][0]["message"]["content"]).strip().splitlines()[0])
            except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
                if n == 0:
                    raise SourcebookError(
                        ErrorCode.MODEL_UNAVAILABLE, f"the model server did not write a question: {exc}"
                    ) from exc
                out.append(None)
        return out

    def close(self) -> None:
        self._client.close()
