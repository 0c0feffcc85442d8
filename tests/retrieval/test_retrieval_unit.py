"""Retrieval's pure parts: the tokenizer, the fusion twin, the rules rewriter, context selection."""

from __future__ import annotations

import uuid

import pytest

from retrieval.rewrite import RulesRewriter
from retrieval.search import convex, rrf
from retrieval.select import select_context
from retrieval.tokenize import MAX_TOKEN_CHARS, Tokenizer, TokenizerSpec, tsquery_any
from retrieval.types import Candidate

pytestmark = pytest.mark.unit

PLAIN = Tokenizer(TokenizerSpec("none", "none"))
DEFAULT = Tokenizer()


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("sha 127e1e532da4 and v3.14.1", ["sha", "127e1e532da4", "and", "v3", "14", "1"]),
        ("snake_case-and kebab", ["snake", "case", "and", "kebab"]),
        ("Größe ﬁle ÉCOLE", ["grösse", "file", "école"]),
        ("数据库索引", ["数", "据", "库", "索", "引"]),
        ("abc中文", ["abc", "中", "文"]),
        ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),
        ("Привет, мир", ["привет", "мир"]),
        ("🙂 🚀 ... !!!", []),
        ("", []),
    ],
)
def test_tokens_are_words_of_any_script(text: str, tokens: list[str]) -> None:
    assert PLAIN.tokens(text) == tokens


def test_stop_words_and_stemming_are_settings() -> None:
    assert DEFAULT.tokens("The running dogs of the city") == ["run", "dog", "citi"]
    assert Tokenizer(TokenizerSpec("none", "english")).tokens("The running dogs") == ["running", "dogs"]
    assert Tokenizer(TokenizerSpec("english", "none")).tokens("The running dogs") == ["the", "run", "dog"]
    assert DEFAULT.spec.key != PLAIN.spec.key


def test_over_long_tokens_are_dropped() -> None:
    assert PLAIN.tokens("x" * (MAX_TOKEN_CHARS + 1) + " kept") == ["kept"]


def test_tsvector_keeps_positions_and_counts_terms() -> None:
    literal, length = DEFAULT.tsvector("the cat and the hat; cats!")
    assert literal == "'cat':2,6 'hat':5"
    assert length == 3


def test_tsquery_quotes_every_lexeme() -> None:
    assert tsquery_any(["it's", "a\\b", "it's"]) == "'it''s' | 'a\\\\b'"


def test_rrf_twin_ranks_by_weighted_reciprocal_rank_with_ties_by_id() -> None:
    fused = rrf(
        [(1, 9.0), (2, 5.0), (3, 5.0)], [(3, 0.1), (4, 0.2)], k=60, weight_bm25=1.0, weight_vector=1.0, limit=10
    )
    assert [cid for cid, _ in fused] == [3, 1, 2, 4]  # 2 and 4 tie at 1/62: the lower id first
    assert fused[0][1] == pytest.approx(1 / 63 + 1 / 61)
    only_vector = rrf([(1, 9.0)], [(2, 0.5)], k=60, weight_bm25=0.0, weight_vector=1.0, limit=10)
    assert only_vector[0] == (2, 1 / 61)
    # Query-aware: BM25's clear winner (second score a quarter of the first) damps the vector arm.
    clear = rrf([(1, 8.0), (2, 2.0)], [(3, 0.1)], k=60, weight_bm25=1.0, weight_vector=1.0, limit=10, adaptive=True)
    assert clear == [(1, 1 / 61), (2, 1 / 62), (3, 0.25 / 61)]


def test_convex_twin_normalises_each_arm_from_its_theoretical_minimum_to_the_querys_best() -> None:
    fused = convex([(1, 8.0), (2, 2.0)], [(2, 0.2), (3, 0.6)], alpha=0.5, limit=10)
    # BM25 over its best (8); cosine as (2 - distance) / (2 - best distance), best 0.2.
    assert fused == [
        (2, pytest.approx(0.5 * 2 / 8 + 0.5 * 1.8 / 1.8)),
        (1, pytest.approx(0.5 * 1.0)),
        (3, pytest.approx(0.5 * 1.4 / 1.8)),
    ]
    assert [c for c, _ in convex([(1, 8.0), (2, 2.0)], [(2, 0.2)], alpha=1.0, limit=10)] == [1, 2]
    assert [c for c, _ in convex([(1, 8.0)], [(2, 0.2), (3, 0.1)], alpha=0.0, limit=2)] == [3, 2]
    # Ties by id; an arm whose best score is 0 adds nothing; limit cuts.
    assert convex([(5, 0.0), (4, 0.0)], [], alpha=0.5, limit=10) == [(4, 0.0), (5, 0.0)]
    assert len(convex([(i, float(i)) for i in range(1, 30)], [], alpha=0.5, limit=7)) == 7


def test_rules_rewriter_strips_chatter_expands_glossary_and_keeps_phrases() -> None:
    rewriter = RulesRewriter(lambda tenant: {"PTO": ["paid time off"]} if tenant == "acme" else {})
    out = rewriter.rewrite(
        'Hi, could you tell me how much PTO the "parental leave" policy gives? Thanks!', tenant_id="acme"
    )
    assert out.text == 'how much PTO the "parental leave" policy gives? (paid time off)'
    assert out.phrases == ("parental leave",)
    assert out.expansions == ("paid time off",)
    assert out.method == "rules"
    assert rewriter.rewrite("how much PTO", tenant_id="other").text == "how much PTO"
    assert rewriter.rewrite("PTO or paid time off?", tenant_id="acme").expansions == ()
    assert rewriter.rewrite("thanks", tenant_id="acme").text == "thanks"  # never emptied
    assert rewriter.rewrite("What is the SLA?", tenant_id="acme").method == "none"


def _candidate(chunk_id: int, doc: uuid.UUID, ordinal: int, text: str, content_hash: str | None = None) -> Candidate:
    return Candidate(
        chunk_id, doc, ordinal, text, "", "t", "u", None, (), "text", content_hash or f"h{chunk_id}", 1.0 / chunk_id
    )


def test_context_selection_dedupes_caps_per_document_and_merges_neighbours() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ranked = [
        _candidate(1, a, 4, "alpha beta gamma delta epsilon. The overlap sentence repeats here"),
        _candidate(2, b, 0, "travel policy hotel cap two hundred dollars"),
        _candidate(3, c, 7, "travel policy hotel cap two hundred dollars", content_hash="h2"),  # same text hash
        _candidate(4, a, 5, "The overlap sentence repeats here and the next chunk goes on"),
        _candidate(5, b, 9, "travel policy: hotel cap, two hundred dollars!"),  # near-duplicate words
        _candidate(6, a, 9, "a third chunk of document a"),
        _candidate(7, a, 12, "a fourth chunk of document a, over the cap"),
        _candidate(8, c, 1, "something else entirely"),
    ]
    passages = select_context(ranked, top_k=5, per_document=3, near_duplicate=0.9)
    assert [p.chunk_id for p in passages] == [1, 2, 6, 8]
    merged = passages[0]
    assert merged.merged_chunk_ids == (1, 4)
    assert merged.text == "alpha beta gamma delta epsilon. The overlap sentence repeats here and the next chunk goes on"
