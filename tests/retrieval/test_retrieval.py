"""Retrieval against the real embedded PostgreSQL: exact BM25 parity with rank-bm25, the SQL fusion
against its Python twin, access control as a property, HNSW recall under a selective filter (real
MiniLM embeddings), and hostile queries."""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from rank_bm25 import BM25Okapi

from ingest import store
from ingest.embed import SentenceTransformerEmbedder
from retrieval.pipeline import RetrievalPipeline
from retrieval.rerank import CrossEncoderReranker
from retrieval.search import CONVEX_FUSION, FUSION, Fusion, SearchParams, convex, keyword_arm, rrf, search
from retrieval.tokenize import Tokenizer, tsquery_any
from retrieval.types import MODES, Caller, Candidate, Filters, Mode
from sourcebook.db import Database, open_database
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import ensure_tenant
from sourcebook.models import resolve_model
from tests.conftest import make_settings
from tests.retrieval_helpers import stdlib_documents, write_passages

pytestmark = pytest.mark.db
TOKENIZER = Tokenizer()
EVERYONE = ("everyone",)


@pytest.fixture(scope="module")
def database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with open_database(make_settings(tmp_path_factory.mktemp("s"), database_url=database_url)) as db:
        yield db


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    model = SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2", offline=True), device="cpu")
    model.warm_up()
    return model


def _bm25(database: Database, tenant: str, query: str, *, limit: int = 10) -> list[tuple[int, float]]:
    with database.pool.connection() as conn:
        result = search(
            conn,
            caller=Caller(tenant, EVERYONE),
            mode="bm25",
            tokenizer=TOKENIZER,
            query_text=query,
            query_vector=None,
            space=database.space,
            params=SearchParams(arm_k=limit, limit=limit),
        )
    return [(c.chunk_id, c.bm25_score or 0.0) for c in result.candidates]


def _reference(database: Database, tenant: str) -> tuple[list[int], list[list[str]], BM25Okapi]:
    """rank-bm25 over the tenant's chunks, tokenized by the same function."""
    with database.pool.connection() as conn:
        rows = conn.execute(
            "SELECT id, context, text FROM chunks WHERE tenant_id = %s ORDER BY id", (tenant,)
        ).fetchall()
    ids = [int(r[0]) for r in rows]  # type: ignore[call-overload]
    corpus = [TOKENIZER.tokens(f"{r[1]}\n\n{r[2]}" if r[1] else str(r[2])) for r in rows]
    return ids, corpus, BM25Okapi(corpus, k1=1.5, b=0.75, epsilon=0.25)


def _expected(ids: list[int], corpus: list[list[str]], bm: BM25Okapi, query: str) -> list[tuple[int, float]]:
    terms = TOKENIZER.tokens(query)
    scores = bm.get_scores(terms)
    matching = [i for i, doc in enumerate(corpus) if set(terms) & set(doc)]
    top = sorted(matching, key=lambda i: (-scores[i], ids[i]))[:10]
    return [(ids[i], float(scores[i])) for i in top]


def _queries(corpus: list[list[str]], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        doc = rng.choice([d for d in corpus if len(d) >= 6])
        words = rng.sample(doc, rng.randint(2, 5))
        if i % 5 == 0:
            words.append(words[0])  # a repeated term counts twice, as in rank-bm25
        if i % 7 == 0:
            words.append("zzyzxunseen")  # a term no chunk has
        out.append(" ".join(words))
    return out


def _assert_parity(database: Database, tenant: str, n_queries: int, seed: int) -> None:
    ids, corpus, bm = _reference(database, tenant)
    for query in _queries(corpus, n_queries, seed):
        got = _bm25(database, tenant, query)
        expected = _expected(ids, corpus, bm, query)
        assert [cid for cid, _ in got] == [cid for cid, _ in expected], query
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-6), query


@pytest.mark.slow
def test_bm25_equals_rank_bm25_on_real_text_and_stays_exact_after_deletes_and_reingests(database: Database) -> None:
    tenant = "parity"
    documents = stdlib_documents(max_docs=120)
    with database.pool.connection() as conn:
        ensure_tenant(conn, tenant)
        doc_ids = [
            write_passages(
                conn, tenant_id=tenant, uri=name, passages=p, groups=EVERYONE, space=database.space, tokenizer=TOKENIZER
            )
            for name, p in documents
        ]
        chunks = conn.execute("SELECT count(*) FROM chunks WHERE tenant_id = %s", (tenant,)).fetchone()
    assert chunks is not None
    assert int(chunks[0]) >= 1000  # type: ignore[call-overload]
    _assert_parity(database, tenant, 60, seed=1)

    with database.pool.connection() as conn:
        for doc_id in doc_ids[:15]:
            with conn.transaction():
                store.delete_document(conn, document_id=doc_id)
        for name, passages in documents[15:30]:  # new versions: a passage gone, one changed, one added
            changed = [passages[0] + " revised wording appended", *passages[2:], "an entirely new closing passage"]
            write_passages(
                conn,
                tenant_id=tenant,
                uri=name,
                passages=changed,
                groups=EVERYONE,
                space=database.space,
                tokenizer=TOKENIZER,
            )
    _assert_parity(database, tenant, 60, seed=2)

    with database.pool.connection() as conn:
        stats = conn.execute("SELECT n, total_len FROM bm25_stats WHERE tenant_id = %s", (tenant,)).fetchone()
        truth = conn.execute("SELECT count(*), sum(bm25_len) FROM chunks WHERE tenant_id = %s", (tenant,)).fetchone()
        stale = conn.execute(
            "SELECT count(*) FROM bm25_terms t WHERE tenant_id = %s AND df <> (SELECT count(*) FROM chunks c "
            "WHERE c.tenant_id = t.tenant_id AND c.bm25 @@ quote_literal(t.term)::tsquery)",
            (tenant,),
        ).fetchone()
    assert stats == truth
    assert stale == (0,)


def test_negative_idf_takes_rank_bm25s_epsilon_floor(database: Database) -> None:
    """A term in most chunks has a negative idf; rank-bm25 replaces it by 0.25 × the mean idf."""
    tenant = "floor"
    rng = random.Random(3)
    vocabulary = ["ledger", "invoice", "audit", "budget", "forecast", "vendor", "payroll", "tax", "asset", "equity"]
    passages = [
        " ".join(["report", *rng.sample(vocabulary, 3)]) if i % 5 else " ".join(rng.sample(vocabulary, 4))
        for i in range(40)
    ]
    with database.pool.connection() as conn:
        ensure_tenant(conn, tenant)
        write_passages(
            conn,
            tenant_id=tenant,
            uri="ledger",
            passages=passages,
            groups=EVERYONE,
            space=database.space,
            tokenizer=TOKENIZER,
        )
        assert conn.execute("SELECT avg_idf FROM bm25_stats WHERE tenant_id = %s", (tenant,)).fetchone() == (None,)
    ids, corpus, bm = _reference(database, tenant)
    for query in ["report ledger", "report", "tax report equity", "vendor"]:
        expected = _expected(ids, corpus, bm, query)
        got = _bm25(database, tenant, query)
        assert [c for c, _ in got] == [c for c, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-9)
    with database.pool.connection() as conn:
        cached = conn.execute("SELECT avg_idf FROM bm25_stats WHERE tenant_id = %s", (tenant,)).fetchone()
    assert cached is not None
    assert cached[0] == pytest.approx(bm.average_idf)  # the mean idf over the whole vocabulary, cached


def _fusion_sql(
    conn: psycopg.Connection[tuple[object, ...]],
    bm25: list[tuple[int, float]],
    vector: list[tuple[int, float]],
    params: dict[str, float | int | bool],
    fusion: sql.Composable = FUSION,
) -> list[tuple[int, float]]:
    statement = (
        sql.SQL(
            "WITH bm25_ranked AS (SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank "
            "FROM unnest(%(b_ids)s::bigint[], %(b_scores)s::float8[]) AS x(id, score)), "
            "vector_ranked AS (SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank "
            "FROM unnest(%(v_ids)s::bigint[], %(v_dist)s::float8[]) AS y(id, distance)),"
        )
        + fusion
        + sql.SQL(" SELECT id, score FROM fused ORDER BY score DESC, id LIMIT %(limit)s")
    )
    values = {
        "b_ids": [i for i, _ in bm25],
        "b_scores": [s for _, s in bm25],
        "v_ids": [i for i, _ in vector],
        "v_dist": [d for _, d in vector],
        **params,
    }
    return [(int(r[0]), float(r[1])) for r in conn.execute(statement, values).fetchall()]  # type: ignore[call-overload, arg-type]


_ARM = st.dictionaries(st.integers(1, 60), st.sampled_from([0.1, 0.2, 0.25, 0.5, 1.0, 2.5, 7.0]), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bm25=_ARM,
    vector=_ARM,
    k=st.integers(1, 100),
    w_bm25=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    w_vector=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    limit=st.integers(1, 50),
    adaptive=st.booleans(),
)
def test_sql_fusion_equals_its_python_twin(
    database: Database,
    bm25: dict[int, float],
    vector: dict[int, float],
    k: int,
    w_bm25: float,
    w_vector: float,
    limit: int,
    adaptive: bool,
) -> None:
    params: dict[str, float | int | bool] = {
        "rrf_k": k,
        "w_bm25": w_bm25,
        "w_vector": w_vector,
        "limit": limit,
        "adaptive": adaptive,
    }
    with database.pool.connection() as conn:
        got = _fusion_sql(conn, list(bm25.items()), list(vector.items()), params)
    expected = rrf(
        list(bm25.items()),
        list(vector.items()),
        k=k,
        weight_bm25=w_bm25,
        weight_vector=w_vector,
        limit=limit,
        adaptive=adaptive,
    )
    assert got == expected


_DISTANCES = st.dictionaries(st.integers(1, 60), st.sampled_from([0.0, 0.05, 0.3, 0.71, 1.0, 1.9, 2.0]), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bm25=st.dictionaries(st.integers(1, 60), st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 2.5, 7.0, 13.3]), max_size=40),
    vector=_DISTANCES,
    alpha=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.77, 1.0]),
    limit=st.integers(1, 50),
)
def test_sql_convex_fusion_equals_its_python_twin(
    database: Database, bm25: dict[int, float], vector: dict[int, float], alpha: float, limit: int
) -> None:
    with database.pool.connection() as conn:
        got = _fusion_sql(
            conn, list(bm25.items()), list(vector.items()), {"alpha": alpha, "limit": limit}, CONVEX_FUSION
        )
    expected = convex(list(bm25.items()), list(vector.items()), alpha=alpha, limit=limit)
    assert [cid for cid, _ in got] == [cid for cid, _ in expected]
    assert [score for _, score in got] == pytest.approx([score for _, score in expected], abs=1e-12)


# --- access control ---------------------------------------------------------------------------

TENANTS = ["t-a", "t-b", "t-c"]
GROUPS = ["everyone", "hr", "finance", "legal", "eng"]


@pytest.fixture(scope="module")
def acl_corpus(database: Database) -> dict[int, tuple[str, frozenset[str], str]]:
    """60 documents of random tenants and groups; chunk id → (tenant, groups, document source)."""
    rng = random.Random(11)
    vectors = np.random.default_rng(11)
    documents = stdlib_documents(max_docs=60, words_per_chunk=40, seed=5)
    with database.pool.connection() as conn:
        for tenant in TENANTS:
            ensure_tenant(conn, tenant)
        for i, (name, passages) in enumerate(documents):
            groups = sorted(rng.sample(GROUPS, rng.randint(1, 2)))
            write_passages(
                conn,
                tenant_id=rng.choice(TENANTS),
                uri=f"doc{i:02d}/{name}",
                passages=passages[:12],
                groups=groups,
                space=database.space,
                tokenizer=TOKENIZER,
                rng=vectors,
            )
        rows = conn.execute(
            "SELECT c.id, c.tenant_id, c.acl_groups, d.source_uri, d.id FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE c.tenant_id = ANY(%s)",
            (TENANTS,),
        ).fetchall()
    return {int(r[0]): (str(r[1]), frozenset(r[2]), str(r[3])) for r in rows}  # type: ignore[call-overload, arg-type]


_WORDS = ["return", "file", "object", "list", "value", "error", "default", "string", "class", "the", "module", "zzq"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tenant=st.sampled_from([*TENANTS, "t-none"]),
    groups=st.sets(st.sampled_from([*GROUPS, "nobody"]), min_size=1, max_size=3),
    mode=st.sampled_from(MODES),
    words=st.lists(st.sampled_from(_WORDS), min_size=1, max_size=4),
    filter_kind=st.sampled_from(["none", "one-document", "prefix", "old"]),
    seed=st.integers(0, 10_000),
    fusion=st.sampled_from(["rrf", "convex"]),
)
def test_no_result_is_ever_outside_the_callers_tenant_and_groups(
    database: Database,
    acl_corpus: dict[int, tuple[str, frozenset[str], str]],
    tenant: str,
    groups: set[str],
    mode: Mode,
    words: list[str],
    filter_kind: str,
    seed: int,
    fusion: Fusion,
) -> None:
    rng = np.random.default_rng(seed)
    vector = rng.standard_normal(database.space.dim).astype(np.float32)
    sources = sorted({source for _, _, source in acl_corpus.values()})
    filters = Filters()
    if filter_kind == "prefix":
        filters = Filters(source_prefix=sources[seed % len(sources)][:5])
    elif filter_kind == "one-document":
        with database.pool.connection() as conn:
            row = conn.execute("SELECT id FROM documents WHERE source_uri = %s", (sources[seed % len(sources)],))
            filters = Filters(document_ids=(row.fetchone()[0],))  # type: ignore[index]
    elif filter_kind == "old":
        filters = Filters(updated_before=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    for exact_max_rows in (0, 20000):  # the HNSW plan and the exact plan
        with database.pool.connection() as conn:
            result = search(
                conn,
                caller=Caller(tenant, tuple(sorted(groups))),
                mode=mode,
                tokenizer=TOKENIZER,
                query_text=" ".join(words),
                query_vector=vector,
                space=database.space,
                params=SearchParams(arm_k=20, limit=40, exact_max_rows=exact_max_rows, fusion=fusion),
                filters=filters,
            )
        for candidate in result.candidates:
            owner, allowed, source = acl_corpus[candidate.chunk_id]
            assert owner == tenant
            assert allowed & groups
            if filter_kind == "prefix":
                assert source.startswith(filters.source_prefix or "")
            if filter_kind == "one-document":
                assert candidate.document_id in filters.document_ids
        if filter_kind == "old":
            assert result.candidates == []
        visible = [cid for cid, (owner, allowed, _) in acl_corpus.items() if owner == tenant and allowed & groups]
        if mode == "vector" and filter_kind == "none":
            assert len(result.candidates) == min(20, len(visible))  # a filtered HNSW scan still fills k


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.8, 1.0])
def test_the_convex_hybrid_statement_fuses_its_own_arms_as_the_twin_does(
    database: Database, acl_corpus: dict[int, tuple[str, frozenset[str], str]], alpha: float
) -> None:
    caller = Caller("t-a", tuple(GROUPS))
    vector = np.random.default_rng(3).standard_normal(database.space.dim).astype(np.float32)
    vector /= np.linalg.norm(vector)

    def run(mode: Mode) -> list[Candidate]:
        with database.pool.connection() as conn:
            return search(
                conn,
                caller=caller,
                mode=mode,
                tokenizer=TOKENIZER,
                query_text="return the default value of the file object",
                query_vector=vector,
                space=database.space,
                params=SearchParams(arm_k=20, limit=40, exact_max_rows=20000, fusion="convex", alpha=alpha),
            ).candidates

    keyword, dense, hybrid = run("bm25"), run("vector"), run("hybrid")
    assert keyword
    assert dense
    expected = convex(
        [(c.chunk_id, float(c.bm25_score or 0)) for c in keyword],
        [(c.chunk_id, float(c.vector_distance or 0)) for c in dense],
        alpha=alpha,
        limit=40,
    )
    assert [c.chunk_id for c in hybrid] == [cid for cid, _ in expected]
    assert [c.score for c in hybrid] == pytest.approx([score for _, score in expected], abs=1e-9)


# --- vectors ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.model
def test_hnsw_with_a_two_percent_filter_matches_the_exact_scan(
    database: Database, embedder: SentenceTransformerEmbedder
) -> None:
    tenant = "hnsw"
    documents = stdlib_documents(max_docs=200, words_per_chunk=40, seed=9)
    passages = [(name, p) for name, ps in documents for p in ps[:8]][:1500]
    vectors = embedder.embed([p for _, p in passages])
    rare = set(random.Random(4).sample(range(len(passages)), len(passages) // 50))  # 2% of the rows
    with database.pool.connection() as conn:
        ensure_tenant(conn, tenant)
        for i, (name, passage) in enumerate(passages):
            write_passages(
                conn,
                tenant_id=tenant,
                uri=f"{i}/{name}",
                passages=[passage],
                groups=("rare",) if i in rare else ("common",),
                space=database.space,
                tokenizer=TOKENIZER,
                vectors=vectors[i : i + 1],
            )
        ids = {
            str(r[0]): int(r[1])  # type: ignore[call-overload]
            for r in conn.execute(
                "SELECT d.source_uri, c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
                "WHERE c.tenant_id = %s",
                (tenant,),
            ).fetchall()
        }
    rare_rows = sorted(rare)
    rare_vectors = vectors[rare_rows]
    recalls = []
    for q in random.Random(5).sample(range(len(passages)), 20):
        query = vectors[q]
        exact = [rare_rows[i] for i in np.argsort(-(rare_vectors @ query), kind="stable")[:10]]
        want = {ids[f"{i}/{passages[i][0]}"] for i in exact}
        with database.pool.connection() as conn:
            result = search(
                conn,
                caller=Caller(tenant, ("rare",)),
                mode="vector",
                tokenizer=TOKENIZER,
                query_text="",
                query_vector=query,
                space=database.space,
                params=SearchParams(arm_k=10, limit=10, exact_max_rows=0, ef_search=40),
            )
        assert result.vector_plan == "hnsw"
        assert len(result.candidates) == 10
        recalls.append(len(want & {c.chunk_id for c in result.candidates}) / 10)
    assert float(np.mean(recalls)) >= 0.95


# --- hostile queries --------------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.parametrize(
    "query",
    [
        "the of and is",  # only stop-words: the keyword arm has nothing, the vector arm still answers
        "'; DROP TABLE chunks; --",
        "a & b | !c <-> d:* (e) \\ 'f'",
        "%_ NULL \x00 \t",
        "🙂🚀🔥",
        "数据库 索引 查询",
        "Привет, как дела?",
        "x" * 3999,
    ],
)
def test_hostile_queries_get_results_or_nothing_never_an_error(
    database: Database, embedder: SentenceTransformerEmbedder, tmp_path: Path, query: str
) -> None:
    pipeline = RetrievalPipeline(
        settings=make_settings(tmp_path), pool=database.pool, space=database.space, embedder=embedder
    )
    for mode in MODES:
        result = pipeline.retrieve(query, caller=Caller("t-a", ("everyone",)), mode=mode)
        assert isinstance(result.passages, list)


@pytest.mark.model
@pytest.mark.parametrize(("query", "message"), [("   ", "empty"), ("x" * 10_000, "10,000 characters")])
def test_empty_and_huge_queries_are_clear_errors(
    database: Database, embedder: SentenceTransformerEmbedder, tmp_path: Path, query: str, message: str
) -> None:
    pipeline = RetrievalPipeline(
        settings=make_settings(tmp_path), pool=database.pool, space=database.space, embedder=embedder
    )
    with pytest.raises(SourcebookError, match=message):
        pipeline.retrieve(query, caller=Caller("t-a", ("everyone",)))


@pytest.mark.parametrize("tenant", ["t-a", "t-the-planner-has-never-seen"])
def test_the_keyword_arm_looks_up_the_questions_terms_once_whatever_the_planner_estimates(
    database: Database, tenant: str
) -> None:
    """Before ANALYZE, a tenant's rows are estimated at one; the plan must still start from the question's
    terms (a materialized lookup), not join the tenant's vocabulary with its chunks (minutes, measured)."""
    terms = TOKENIZER.tokens("return the default value of a file object")
    statement = sql.SQL("EXPLAIN WITH ") + keyword_arm(sql.SQL("")) + sql.SQL(" SELECT id FROM bm25_ranked")
    values = {
        "tenant": tenant,
        "groups": list(EVERYONE),
        "terms": terms,
        "qf": [1.0] * len(terms),
        "tsquery": tsquery_any(terms),
        "k1": 1.5,
        "b": 0.75,
        "epsilon": 0.25,
        "arm_k": 100,
    }
    with database.pool.connection() as conn:
        plan = "\n".join(str(row[0]) for row in conn.execute(statement, values).fetchall())  # type: ignore[call-overload]
    assert "CTE bm25_query" in plan
    lookup = plan.split("CTE bm25_query", 1)[1].split("CTE bm25\n", 1)[0]
    assert "bm25_terms" in lookup


def test_the_searched_tables_statistics_are_refreshed_once_enough_of_their_rows_changed(database: Database) -> None:
    with database.pool.connection() as conn:
        conn.autocommit = True
        ensure_tenant(conn, "t-stats")
        write_passages(
            conn,
            tenant_id="t-stats",
            uri="stats/doc",
            passages=["a passage about statistics", "another passage"],
            groups=EVERYONE,
            space=database.space,
            tokenizer=TOKENIZER,
        )
        conn.execute("SELECT pg_stat_force_next_flush()")
        deadline = time.monotonic() + 10
        changed = 0
        while time.monotonic() < deadline and not changed:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'chunks'"
            ).fetchone()
            changed = int(row[0]) if row else 0  # type: ignore[call-overload]
            time.sleep(0.1)
        assert changed >= 2
        assert "chunks" in store.refresh_statistics(conn, rows=0, share=0.0)
        assert "chunks" not in store.refresh_statistics(conn)  # just analyzed: not stale


def test_a_search_past_its_time_limit_is_a_clear_timeout_error(database: Database) -> None:
    def keyword_search(conn: psycopg.Connection[tuple[object, ...]], timeout_ms: int) -> str:
        return search(
            conn,
            caller=Caller("t-a", EVERYONE),
            mode="bm25",
            tokenizer=TOKENIZER,
            query_text="return value",
            query_vector=None,
            space=database.space,
            params=SearchParams(timeout_ms=timeout_ms),
        ).vector_plan

    with database.pool.connection() as holder, database.pool.connection() as conn:
        with holder.transaction(force_rollback=True):
            holder.execute("LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE")  # the search waits behind it
            started = time.monotonic()
            with pytest.raises(SourcebookError, match="ran past SOURCEBOOK_SEARCH_TIMEOUT_MS") as raised:
                keyword_search(conn, 300)
            assert time.monotonic() - started < 5
        assert raised.value.code is ErrorCode.TIMEOUT
        assert keyword_search(conn, 5000) == "none"  # the connection is usable again


# --- reranking --------------------------------------------------------------------------------


@pytest.mark.model
def test_the_cross_encoder_reranks_the_top_candidates_within_its_budget() -> None:
    """Plumbing on the local MiniLM folder (its classification head is untrained, so scores are noise)."""
    location = resolve_model("all-MiniLM-L6-v2", offline=True)
    candidates = [
        Candidate(
            i, uuid.uuid4(), 0, f"passage number {i} about travel", "", "t", "u", None, (), "text", f"h{i}", 1 / i
        )
        for i in range(1, 11)
    ]
    full = CrossEncoderReranker(location, candidates=6, budget_ms=60_000, batch_size=4, device="cpu")
    outcome = full.rerank("travel policy", candidates)
    assert (outcome.reranked, outcome.complete) == (6, True)
    head = outcome.candidates[:6]
    assert {c.chunk_id for c in head} == set(range(1, 7))
    assert [c.rerank_score for c in head] == sorted((c.rerank_score for c in head), reverse=True)  # type: ignore[misc]
    assert [c.chunk_id for c in outcome.candidates[6:]] == [7, 8, 9, 10]
    tight = CrossEncoderReranker(location, candidates=6, budget_ms=0.001, batch_size=4, device="cpu")
    partial = tight.rerank("travel policy", candidates)
    assert (partial.reranked, partial.complete) == (4, False)  # one batch, then the budget stops it
    assert [c.chunk_id for c in partial.candidates[4:]] == [5, 6, 7, 8, 9, 10]
