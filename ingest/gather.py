"""One embedding call for the jobs a worker runs at once.

A worker runs ``SOURCEBOOK_INGEST_CONCURRENCY`` jobs in threads; each parses and chunks its file, then
needs its chunks embedded. Alone, a document's ~25 chunks make three or four batches, the last one part
empty; the embedder sorts texts by token count, so the more texts one call has, the less padding its
batches carry. On 133 benchmark files the model was fed 1.09× the chunks' real tokens per document,
1.03× gathered over 4 documents and 1.02× over 8.

Jobs are *members*: one joins when its job starts, hands its texts in, and leaves when its job ends
(after storing). Texts handed in go as one call when as many are waiting as jobs run at once
(``size``), when they add up to ``max_texts``, or when nothing else is worth waiting for: no member
still to come that joined less than ``patience_s`` ago (a job parsing a large PDF for a minute holds
the others once, not for its whole parse), no member still storing (the job that takes its slot is
about to join), and no member joined or left in the last ``linger_s``. Nothing waits longer than
``patience_s``. The member whose arrival or wait starts the call runs it, the others wait for their
rows. If it fails, each member's texts are encoded alone, so only the member whose texts fail gets
the error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@dataclass(slots=True)
class _Call:
    texts: list[str]
    vectors: Future[Vectors] = field(default_factory=Future)
    taken: bool = False
    encode_s: float = 0.0  # this call's share of the gathered call's time, by its number of texts
    gathered_texts: int = 0


@dataclass(slots=True)
class Member:
    """One job's place in the gather; ``embed`` once, then read where the time went."""

    _gather: EmbedGather
    handed_in: bool = False
    encode_s: float = 0.0  # this job's share of the encoding time (by its number of texts)
    wait_s: float = 0.0  # the rest of its time in ``embed``: the other members' parsing and encoding
    gathered_texts: int = 0  # texts in the call its texts went into

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self._gather._embed(self, list(texts))


class EmbedGather:
    """``size``: the jobs that run at once (the worker's concurrency)."""

    def __init__(
        self,
        embed: Callable[[Sequence[str]], Vectors],
        *,
        size: int,
        patience_s: float = 10.0,
        linger_s: float = 1.0,
        max_texts: int = 2048,
    ) -> None:
        self._encode = embed
        self.size = size
        self.patience_s = patience_s
        self.linger_s = linger_s
        self.max_texts = max_texts
        self._changed = threading.Condition()
        # Gathered calls run one at a time on one thread: the model's time is its own, and torch keeps a
        # single OpenMP team and malloc arena instead of one per job thread.
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="embed")
        self._coming: dict[int, float] = {}  # members yet to hand their texts in: id → when they joined
        self._past = 0  # members whose texts are taken (or who had none), still at work: storing
        self._waiting: list[_Call] = []
        self._first_waiting_since = 0.0
        self._last_change = 0.0  # when a member last joined or left

    @contextmanager
    def member(self) -> Iterator[Member]:
        member = Member(self)
        with self._changed:
            self._coming[id(member)] = self._last_change = time.monotonic()
            self._changed.notify_all()
        try:
            yield member
        finally:
            with self._changed:
                if self._coming.pop(id(member), None) is None and member.handed_in:
                    self._past -= 1
                self._last_change = time.monotonic()
                self._changed.notify_all()

    def _wait_s(self) -> float:
        """0 when the waiting calls should go now, else how long they may wait before looking again (lock
        held; a member joining, handing in or leaving wakes them sooner).

        They wait for the members still to come that joined less than ``patience_s`` ago, and for the
        members that are storing: each that ends frees a slot, and the job that takes it usually
        joins within milliseconds (``linger_s``). Never longer than ``patience_s`` in all."""
        now = time.monotonic()
        if len(self._waiting) >= self.size or sum(len(c.texts) for c in self._waiting) >= self.max_texts:
            return 0.0
        deadline = self._first_waiting_since + self.patience_s
        fresh = [joined + self.patience_s for joined in self._coming.values() if joined + self.patience_s > now]
        if fresh:
            return max(0.0, min(deadline, max(fresh)) - now)
        if self._past:
            return max(0.0, deadline - now)
        return max(0.0, min(deadline, self._last_change + self.linger_s) - now)

    def _embed(self, member: Member, texts: list[str]) -> Vectors:
        started = time.perf_counter()
        if member.handed_in:  # a second call is not gathered
            return self._encode(texts)
        call = _Call(texts)
        taken: list[_Call] = []
        with self._changed:
            member.handed_in = True
            del self._coming[id(member)]
            self._changed.notify_all()
            if not texts:
                self._past += 1
            else:
                if not self._waiting:
                    self._first_waiting_since = time.monotonic()
                self._waiting.append(call)
                while not call.taken:
                    wait_s = self._wait_s()
                    if wait_s > 0:
                        self._changed.wait(wait_s)
                        continue
                    taken, self._waiting = self._waiting, []
                    self._past += len(taken)
                    for c in taken:
                        c.taken = True
        if not texts:
            return self._encode(texts)
        if taken:
            self._run(taken)
        vectors = call.vectors.result()
        member.encode_s = call.encode_s
        member.wait_s = max(0.0, time.perf_counter() - started - call.encode_s)
        member.gathered_texts = call.gathered_texts
        return vectors

    def _run(self, calls: list[_Call]) -> None:
        try:
            self._encoder.submit(self._encode_calls, calls).result()
        finally:  # interrupted (KeyboardInterrupt, SystemExit): nobody may wait for ever
            for c in calls:
                if not c.vectors.done():
                    c.vectors.set_exception(RuntimeError("the gathered embedding call was interrupted"))

    def _encode_calls(self, calls: list[_Call]) -> None:
        """Encode the calls as one and hand each its rows (``encode_s`` is set before the rows: a waiting
        member reads it as soon as it has them)."""
        total = sum(len(c.texts) for c in calls)
        started = time.perf_counter()
        try:
            vectors = self._encode([text for c in calls for text in c.texts])
        except Exception as exc:
            if len(calls) == 1:
                calls[0].vectors.set_exception(exc)
                return
            for c in calls:  # find whose texts fail: each alone
                c.gathered_texts = len(c.texts)
                started = time.perf_counter()
                try:
                    alone = self._encode(c.texts)
                except Exception as failure:
                    c.vectors.set_exception(failure)
                    continue
                c.encode_s = time.perf_counter() - started
                c.vectors.set_result(alone)
            return
        elapsed = time.perf_counter() - started
        start = 0
        for c in calls:
            c.encode_s = elapsed * len(c.texts) / total
            c.gathered_texts = total
            c.vectors.set_result(vectors[start : start + len(c.texts)])
            start += len(c.texts)
