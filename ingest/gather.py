"""One embedding call for the jobs a worker runs at once.

A worker runs ``SOURCEBOOK_INGEST_CONCURRENCY`` jobs in threads; each parses and chunks its file, then
needs its chunks embedded. Alone, a document's ~25 chunks make three or four batches, the last one part
empty; the embedder sorts texts by token count, so the more texts one call has, the less padding its
batches carry (bench/README.md, Ingestion, has the figures).

Jobs are *members*: one joins when it starts parsing (files found unchanged never join), hands its
texts in, and leaves when its document is stored. Texts handed in go as one call when as many are
waiting as jobs run at once (``size``), when they add up to ``max_texts``, or when nothing else is
worth waiting for: no member still to come that joined less than ``patience_s`` ago (a job parsing a
large PDF for a minute holds the others once, not for its whole parse), no member still storing (the
job that takes its slot is about to join), and no member joined or left in the last ``linger_s``.
Nothing waits longer than ``patience_s``. The member whose arrival or wait starts the call runs it,
the others wait for their rows. If it fails, each member's texts are encoded alone, so only the
member whose texts fail gets the error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

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


@dataclass(slots=True, eq=False)  # members are told apart by identity
class Member:
    """One job's place in the gather; ``embed`` once, then read where the time went."""

    _gather: EmbedGather
    # coming: texts not handed in yet; past: texts handed in (waiting, then storing); left: gone
    state: Literal["coming", "past", "left"] = "coming"
    joined: float = field(default_factory=time.monotonic)
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
        # The model runs on one thread: the gathered calls one at a time (their time is their own), and
        # torch keeps one OpenMP team and one malloc arena instead of one per job thread.
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="embed")
        self._coming: set[Member] = set()
        self._past = 0  # members in state "past": waiting for their rows, or storing
        self._waiting: list[_Call] = []
        self._first_waiting_since = 0.0
        self._last_change = 0.0  # when a member last joined or left

    def settled(self) -> bool:
        """No member in the gather, nothing waiting (for tests)."""
        with self._changed:
            return not self._coming and not self._past and not self._waiting

    @contextmanager
    def member(self) -> Iterator[Member]:
        member = Member(self)
        with self._changed:
            self._coming.add(member)
            self._last_change = member.joined
            self._changed.notify_all()
        try:
            yield member
        finally:
            with self._changed:
                if member.state == "coming":
                    self._coming.discard(member)
                elif member.state == "past":
                    self._past -= 1
                member.state = "left"
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
        fresh = [m.joined + self.patience_s for m in self._coming if m.joined + self.patience_s > now]
        if fresh:
            return max(0.0, min(deadline, max(fresh)) - now)
        if self._past > len(self._waiting):  # some are storing (the waiting ones are "past" too)
            return max(0.0, deadline - now)
        return max(0.0, min(deadline, self._last_change + self.linger_s) - now)

    def _embed(self, member: Member, texts: list[str]) -> Vectors:
        if member.state != "coming" or not texts:  # nothing to gather: a second call, or no texts
            with self._changed:
                if member.state == "coming":
                    self._coming.discard(member)
                    member.state = "past"
                    self._past += 1
                    self._changed.notify_all()
            return self._encoder.submit(self._encode, texts).result()
        started = time.perf_counter()
        call = _Call(texts)
        taken: list[_Call] = []
        with self._changed:
            self._coming.discard(member)
            member.state = "past"
            self._past += 1
            if not self._waiting:
                self._first_waiting_since = time.monotonic()
            self._waiting.append(call)
            self._changed.notify_all()
            try:
                while not call.taken:
                    wait_s = self._wait_s()
                    if wait_s > 0:
                        self._changed.wait(wait_s)
                        continue
                    taken, self._waiting = self._waiting, []
                    for c in taken:
                        c.taken = True
                    self._changed.notify_all()
            except BaseException:  # interrupted while waiting: take the call back
                if not call.taken:
                    self._waiting.remove(call)
                    self._changed.notify_all()
                raise
        if taken:
            self._run(taken)
        vectors = call.vectors.result()
        member.encode_s = call.encode_s
        member.wait_s = max(0.0, time.perf_counter() - started - call.encode_s)
        member.gathered_texts = call.gathered_texts
        return vectors

    def _run(self, calls: list[_Call]) -> None:
        failure: BaseException = RuntimeError("the gathered embedding call was interrupted")
        try:
            self._encoder.submit(self._encode_calls, calls).result()
        except BaseException as exc:
            failure = exc
            raise
        finally:  # nobody may wait for ever
            for c in calls:
                if not c.vectors.done():
                    c.vectors.set_exception(failure)

    def _encode_calls(self, calls: list[_Call]) -> None:
        """Encode the calls as one and hand each its rows (``encode_s`` is set before the rows: a waiting
        member reads it as soon as it has them)."""
        total = sum(len(c.texts) for c in calls)
        started = time.perf_counter()
        try:
            vectors = self._encode([text for c in calls for text in c.texts])
            if len(vectors) != total:
                raise RuntimeError(f"the embedder returned {len(vectors)} rows for {total} texts")
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
