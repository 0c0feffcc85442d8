"""The concurrent jobs of a worker embed in one call (``ingest.gather``), with the real MiniLM model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from ingest.embed import SentenceTransformerEmbedder
from ingest.gather import EmbedGather, Member
from sourcebook.models import resolve_model

pytestmark = [pytest.mark.model]
Vectors = npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    model = SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2", offline=True), device="cpu")
    model.warm_up()
    return model


class _Calls:
    """The real embedder, noting each call's texts; fails any call with a text that says "poison"."""

    def __init__(self, embedder: SentenceTransformerEmbedder) -> None:
        self._embedder = embedder
        self.calls: list[list[str]] = []
        self.seconds: list[float] = []
        self.threads: set[str] = set()

    def __call__(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if "poison" in texts:
            raise ValueError("this text cannot be embedded")
        started = time.perf_counter()
        try:
            return self._embedder.embed(texts)
        finally:
            self.seconds.append(time.perf_counter() - started)


def _in_threads(gather: EmbedGather, jobs: list[Callable[[Member], object]]) -> list[object]:
    """Run each job as a member in its own thread, all joined before any starts; its result or error."""
    joined = threading.Barrier(len(jobs) + 1)
    results: list[object] = [None] * len(jobs)

    def run(n: int) -> None:
        with gather.member() as member:
            joined.wait()
            try:
                results[n] = jobs[n](member)
            except Exception as exc:
                results[n] = exc

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(len(jobs))]
    for thread in threads:
        thread.start()
    joined.wait()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a member never got its rows"
    assert gather.settled()
    return results


def test_members_embed_in_one_call_and_each_gets_its_own_rows(embedder: SentenceTransformerEmbedder) -> None:
    texts = [[f"document {n} sentence {i} about topic {n * i}" for i in range(n + 1)] for n in range(6)]
    alone = [embedder.embed(t) for t in texts]
    calls = _Calls(embedder)
    gather = EmbedGather(calls, size=len(texts), patience_s=30)
    results = _in_threads(gather, [lambda m, t=t: m.embed(t) for t in texts])
    assert len(calls.calls) == 1
    assert sorted(calls.calls[0]) == sorted(t for group in texts for t in group)
    for got, expected in zip(results, alone, strict=True):
        assert isinstance(got, np.ndarray)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-5


def test_jobs_that_start_while_others_store_wait_for_the_next_ones(embedder: SentenceTransformerEmbedder) -> None:
    """A worker refills each slot as its job ends: the job that starts while the others still store
    waits for the jobs that take their slots, as the first jobs waited for each other."""
    calls = _Calls(embedder)
    gather = EmbedGather(calls, size=2, patience_s=30, linger_s=0.2)
    start = threading.Barrier(2)

    def slot(first: str, second: str, store_s: float) -> None:
        start.wait()
        for name in (first, second):
            with gather.member() as member:
                member.embed([f"{name} chunk {i}" for i in range(3)])
                time.sleep(store_s)

    threads = [
        threading.Thread(target=slot, args=("A", "C", 0.0)),
        threading.Thread(target=slot, args=("B", "D", 1.5)),  # stores longer than the linger
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [sorted({text[0] for text in call}) for call in calls.calls] == [["A", "B"], ["C", "D"]]
    assert gather.settled()


def test_a_member_that_ends_without_embedding_is_not_waited_for(embedder: SentenceTransformerEmbedder) -> None:
    calls = _Calls(embedder)
    gather = EmbedGather(calls, size=3, patience_s=30)
    handed_in = threading.Event()

    def embeds(member: Member) -> Vectors:
        handed_in.set()
        return member.embed(["the refund policy"])

    def leaves(member: Member) -> None:  # an unchanged file, or one that fails to parse
        handed_in.wait()
        time.sleep(0.2)

    def has_nothing_new(member: Member) -> Vectors:  # every vector already stored
        handed_in.wait()
        return member.embed([])

    started = time.monotonic()
    vectors, _, nothing = _in_threads(gather, [embeds, leaves, has_nothing_new])
    assert time.monotonic() - started < 10  # not the 30 s of patience
    assert isinstance(vectors, np.ndarray)
    assert vectors.shape == (1, 384)
    assert isinstance(nothing, np.ndarray)
    assert nothing.shape == (0, 384)
    assert [c for c in calls.calls if c] == [["the refund policy"]]  # an empty call is never gathered


def test_a_slow_member_holds_the_others_for_the_patience_only(embedder: SentenceTransformerEmbedder) -> None:
    gather = EmbedGather(_Calls(embedder), size=3, patience_s=2)
    done = threading.Event()
    waited: list[float] = []

    def quick(member: Member) -> None:
        started = time.monotonic()
        member.embed(["a short memo"])
        waited.append(time.monotonic() - started)
        done.set()

    def slow(member: Member) -> Vectors:  # parsing a large PDF
        assert done.wait(timeout=30)
        return member.embed(["a long manual"])

    _in_threads(gather, [quick, quick, slow])
    assert len(waited) == 2
    assert all(1.0 < w < 15 for w in waited)  # ~2 s from the slow member's join


def test_texts_up_to_the_limit_go_without_waiting(embedder: SentenceTransformerEmbedder) -> None:
    gather = EmbedGather(_Calls(embedder), size=2, patience_s=30, max_texts=8)
    gathered: list[int] = []
    done = threading.Event()

    def big(member: Member) -> None:
        member.embed([f"text {i}" for i in range(8)])
        gathered.append(member.gathered_texts)
        done.set()

    def later(member: Member) -> None:
        assert done.wait(timeout=30)
        member.embed(["one more"])
        gathered.append(member.gathered_texts)

    started = time.monotonic()
    _in_threads(gather, [big, later])
    assert time.monotonic() - started < 10
    assert gathered == [8, 1]


def test_when_the_gathered_call_fails_only_the_member_whose_texts_fail_gets_the_error(
    embedder: SentenceTransformerEmbedder,
) -> None:
    calls = _Calls(embedder)
    gather = EmbedGather(calls, size=2, patience_s=30)
    good, bad = _in_threads(gather, [lambda m: m.embed(["fine", "also fine"]), lambda m: m.embed(["poison"])])
    assert isinstance(good, np.ndarray)
    assert good.shape == (2, 384)
    assert isinstance(bad, ValueError)
    assert len(calls.calls) == 3  # together, then each alone


def test_time_is_split_between_encoding_and_waiting(embedder: SentenceTransformerEmbedder) -> None:
    """Each member's encode time is its share (by texts) of the model's time on the gathered call, and
    the rest of its time in ``embed`` is waiting: the first to hand in waits for the second."""
    calls = _Calls(embedder)
    gather = EmbedGather(calls, size=2, patience_s=30)
    members: dict[int, Member] = {}
    in_embed: dict[int, float] = {}

    def job(texts: int, delay_s: float) -> Callable[[Member], object]:
        def run(member: Member) -> Vectors:
            members[texts] = member
            time.sleep(delay_s)  # parsing
            started = time.perf_counter()
            vectors = member.embed([f"sentence {i} of a job with {texts} texts" for i in range(texts)])
            in_embed[texts] = time.perf_counter() - started
            return vectors

        return run

    _in_threads(gather, [job(30, 0.0), job(10, 1.0)])
    [model_s] = calls.seconds
    assert members[30].gathered_texts == members[10].gathered_texts == 40
    assert members[30].encode_s + members[10].encode_s == pytest.approx(model_s, rel=0.05)
    assert members[30].encode_s == pytest.approx(3 * members[10].encode_s)
    for texts, member in members.items():
        assert member.encode_s + member.wait_s == pytest.approx(in_embed[texts], abs=0.05)
    assert members[30].wait_s > 0.8  # waited for the other's parse
    assert members[10].wait_s < members[30].wait_s


def test_a_job_that_fails_before_embedding_frees_the_others_and_late_calls_still_work(
    embedder: SentenceTransformerEmbedder,
) -> None:
    calls = _Calls(embedder)
    gather = EmbedGather(calls, size=2, patience_s=30)

    def fails(member: Member) -> None:  # a corrupt file
        time.sleep(0.3)
        raise ValueError("cannot parse")

    def embeds_twice(member: Member) -> list[tuple[int, int]]:
        first = member.embed(["first call"])
        second = member.embed(["second call", "not gathered"])
        return [first.shape, second.shape]

    started = time.monotonic()
    failed, shapes = _in_threads(gather, [fails, embeds_twice])
    assert time.monotonic() - started < 15
    assert isinstance(failed, ValueError)
    assert shapes == [(1, 384), (2, 384)]
    assert calls.threads == {"embed_0"}  # the model only ever runs on the gather's thread
