"""Hybrid retrieval in one SQL statement: exact Okapi BM25 ⊕ pgvector, fused by reciprocal rank.

Both arms carry the tenant, access-group and metadata filters in their own WHERE clause, so no
top-k cut ever happens before access control.

**Keyword arm.** Okapi BM25 exactly as rank-bm25's ``BM25Okapi`` computes it on the same tokens:
``idf(t) = ln(N - df + 0.5) - ln(df + 0.5)``, negative idfs replaced by ``epsilon × mean idf`` over the
tenant's whole vocabulary, each query token (repeats included) adding
``idf × tf(k1 + 1) / (tf + k1(1 - b + b·len/avgdl))``; float8 throughout. Candidate chunks are found
through the GIN index of their tsvector together with the tenant and group filters (a bitmap AND:
the filter cuts the work before any scoring), and a chunk's term frequencies are read from its own
tsvector, restricted to the query's terms with ``ts_filter(setweight(...))``. Stop-words are not
indexed, which is what bounds the cost of common words while keeping scores exact.

**Vector arm.** Cosine distance on the embedding space's partial HNSW index with
``hnsw.iterative_scan = relaxed_order`` (a filtered HNSW scan otherwise returns a fraction of k), or an
exact scan when the filter leaves few enough chunks that scanning them is cheaper and exact. The plan
is chosen here, never left to the planner: at 100k chunks it silently picks HNSW without iteration.

**Fusion**, one of two, ties broken by chunk id either way; each has a pure-Python twin (``rrf()``,
``convex()``) which the tests hold the SQL to:

- ``rrf``: ``Σ weight_arm / (k + rank_arm)`` over the arms that returned the chunk.
- ``convex``: ``α·norm(bm25) + (1−α)·norm(cosine)`` with the theoretical min-max normalisation of
  Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval" (ACM TOIS 2023): each
  arm's score over its best score for this query, measured from the score's theoretical minimum
  (0 for BM25, −1 for cosine similarity, i.e. ``(2 − distance) / (2 − best distance)``); a chunk one
  arm did not return gets that arm's minimum, 0. They find it better than RRF in and out of domain,
  and its one weight cheap to tune per collection.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from psycopg import errors, sql
from psycopg.rows import kwargs_row

from retrieval.tokenize import Tokenizer, tsquery_any
from retrieval.types import Caller, Candidate, ChunkMark, Filters, Mode
from sourcebook.db import Conn
from sourcebook.db.spaces import EmbeddingSpace
from sourcebook.errors import ErrorCode, SourcebookError

Fusion = Literal["rrf", "convex"]


@dataclass(frozen=True, slots=True)
class SearchParams:
    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25
    arm_k: int = 50
    rrf_k: int = 60
    weight_bm25: float = 1.0
    weight_vector: float = 0.5
    adaptive: bool = False
    fusion: Fusion = "rrf"
    alpha: float = 0.5
    ef_search: int = 100
    exact_max_rows: int = 4000
    timeout_ms: int = 10000  # 0: no limit
    limit: int = 50


@dataclass(frozen=True, slots=True)
class SearchResult:
    candidates: list[Candidate]
    terms: list[str]
    vector_plan: str  # "exact", "hnsw" or "none"


def _filters_sql(filters: Filters) -> tuple[sql.Composable, dict[str, Any]]:
    """Metadata conditions on chunk ``c`` (the document's through an EXISTS)."""
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if filters.document_ids:
        parts.append(sql.SQL("c.document_id = ANY(%(f_docs)s::uuid[])"))
        params["f_docs"] = list(filters.document_ids)
    doc_conditions: list[sql.Composable] = []
    if filters.source_prefix is not None:
        doc_conditions.append(sql.SQL("d.source_uri LIKE %(f_prefix)s"))
        escaped = filters.source_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["f_prefix"] = escaped + "%"
    if filters.updated_after is not None:
        doc_conditions.append(sql.SQL("d.updated_at >= %(f_after)s"))
        params["f_after"] = filters.updated_after
    if filters.updated_before is not None:
        doc_conditions.append(sql.SQL("d.updated_at < %(f_before)s"))
        params["f_before"] = filters.updated_before
    if doc_conditions:
        parts.append(
            sql.SQL("EXISTS (SELECT 1 FROM documents d WHERE d.id = c.document_id AND {})").format(
                sql.SQL(" AND ").join(doc_conditions)
            )
        )
    if not parts:
        return sql.SQL(""), params
    return sql.SQL(" AND ") + sql.SQL(" AND ").join(parts), params


_ACCESS = sql.SQL("c.tenant_id = %(tenant)s AND c.acl_groups && %(groups)s::text[]")

# The mean idf over the tenant's whole vocabulary (rank-bm25's epsilon floor), computed only when a
# query term has a negative idf and the cached value was cleared by a write (an InitPlan is lazy).
_AVG_IDF = sql.SQL(
    "(SELECT avg(ln(st.n - t.df + 0.5::float8) - ln(t.df + 0.5::float8)) FROM bm25_terms t "
    "WHERE t.tenant_id = %(tenant)s)"
)

# The query's terms with their weights are looked up first and once (MATERIALIZED): left to the planner,
# a tenant it has no statistics for yet (a large first ingest, before ANALYZE) is estimated at one row,
# and it joined the tenant's whole vocabulary with its every matching chunk instead, a nested loop that
# ran for minutes on a 7,132-chunk tenant (30 ms with the lookup first).
_BM25 = sql.SQL("""
bm25_stats_row AS (
    SELECT n::float8 AS n, CASE WHEN n > 0 THEN total_len::float8 / n ELSE 1 END AS avgdl, avg_idf
    FROM bm25_stats WHERE tenant_id = %(tenant)s
),
bm25_query AS MATERIALIZED (
    SELECT t.term, q.qf * CASE WHEN raw.idf < 0
        THEN %(epsilon)s::float8 * coalesce(st.avg_idf, {avg_idf}) ELSE raw.idf END AS weight
    FROM unnest(%(terms)s::text[], %(qf)s::float8[]) AS q(term, qf)
    JOIN bm25_terms t ON t.tenant_id = %(tenant)s AND t.term = q.term
    CROSS JOIN bm25_stats_row st
    CROSS JOIN LATERAL (SELECT ln(st.n - t.df + 0.5::float8) - ln(t.df + 0.5::float8) AS idf) raw
),
bm25 AS MATERIALIZED (
    SELECT c.id, sum(q.weight * (u.tf * (%(k1)s::float8 + 1))
               / (u.tf + %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * c.bm25_len / st.avgdl))) AS score
    FROM chunks c
    CROSS JOIN LATERAL (
        SELECT x.lexeme, cardinality(x.positions)::float8 AS tf
        FROM unnest(ts_filter(setweight(c.bm25, 'A', %(terms)s::text[]), '{{a}}')) AS x
    ) u
    JOIN bm25_query q ON q.term = u.lexeme
    CROSS JOIN bm25_stats_row st
    WHERE {access} AND c.bm25 @@ %(tsquery)s::tsquery {filters}
    GROUP BY c.id
    ORDER BY score DESC, c.id
    LIMIT %(arm_k)s
),
bm25_ranked AS (
    SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank FROM bm25
)""")


def keyword_arm(filters_sql: sql.Composable) -> sql.Composed:
    """The keyword arm's CTEs (``bm25_ranked(id, score, rank)`` last) with the metadata conditions."""
    return _BM25.format(avg_idf=_AVG_IDF, access=_ACCESS, filters=filters_sql)


_NO_BM25 = sql.SQL(
    "bm25_ranked AS (SELECT NULL::bigint AS id, NULL::float8 AS score, NULL::bigint AS rank WHERE false)"
)

_VECTOR = sql.SQL("""
vector_arm AS MATERIALIZED (
    SELECT c.id, {distance} AS distance
    FROM chunks c
    WHERE c.embedding_space_id = {space} AND {access} {filters}
    ORDER BY {order}
    LIMIT %(arm_k)s
),
vector_ranked AS (
    SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank FROM vector_arm
)""")

_NO_VECTOR = sql.SQL(
    "vector_ranked AS (SELECT NULL::bigint AS id, NULL::float8 AS distance, NULL::bigint AS rank WHERE false)"
)

# The fusion over two CTEs, bm25_ranked(id, score, rank) and vector_ranked(id, distance, rank).
# Query-aware (``adaptive``): the vector arm's weight is scaled by how contested the keyword arm's top
# is, its second score over its first (1 when it has fewer than two): a clear keyword winner keeps
# its place, a close race lets the vector arm decide.
FUSION = sql.SQL("""
bm25_contest AS (
    SELECT CASE WHEN %(adaptive)s THEN coalesce(
        max(score) FILTER (WHERE rank = 2) / nullif(max(score) FILTER (WHERE rank = 1), 0), 1::float8)
        ELSE 1::float8 END AS contest
    FROM bm25_ranked
),
fused AS (
    SELECT coalesce(b.id, v.id) AS id, b.rank AS bm25_rank, b.score AS bm25_score,
           v.rank AS vector_rank, v.distance AS vector_distance,
           coalesce(%(w_bm25)s::float8 / (%(rrf_k)s::float8 + b.rank), 0::float8)
           + coalesce(%(w_vector)s::float8 * x.contest / (%(rrf_k)s::float8 + v.rank), 0::float8) AS score
    FROM bm25_ranked b FULL JOIN vector_ranked v ON b.id = v.id CROSS JOIN bm25_contest x
)""")

# Convex combination over the same two CTEs; %(alpha)s is the keyword arm's weight.
CONVEX_FUSION = sql.SQL("""
arm_tops AS (
    SELECT (SELECT max(score) FROM bm25_ranked) AS bm25_top, (SELECT min(distance) FROM vector_ranked) AS vector_top
),
fused AS (
    SELECT coalesce(b.id, v.id) AS id, b.rank AS bm25_rank, b.score AS bm25_score,
           v.rank AS vector_rank, v.distance AS vector_distance,
           coalesce(%(alpha)s::float8 * (b.score / nullif(t.bm25_top, 0::float8)), 0::float8)
           + coalesce((1::float8 - %(alpha)s::float8)
                      * ((2::float8 - v.distance) / nullif(2::float8 - t.vector_top, 0::float8)), 0::float8) AS score
    FROM bm25_ranked b FULL JOIN vector_ranked v ON b.id = v.id CROSS JOIN arm_tops t
)""")

_RESULT = sql.SQL("""
SELECT f.id AS chunk_id, c.document_id, c.ordinal, c.text, c.context, d.title, d.source_uri, c.page,
       c.heading_path, c.kind, c.content_hash, f.score, f.bm25_rank, f.bm25_score, f.vector_rank, f.vector_distance,
       coalesce(d.metadata->>'effective_date', d.metadata->>'date') AS document_date,
       c.guard_flags, c.guard_score, c.guard_screen
FROM fused f
JOIN chunks c ON c.id = f.id
JOIN documents d ON d.id = c.document_id
ORDER BY f.score DESC, f.id
LIMIT %(limit)s""")


def rrf(
    bm25: Sequence[tuple[int, float]],
    vector: Sequence[tuple[int, float]],
    *,
    k: float,
    weight_bm25: float,
    weight_vector: float,
    limit: int,
    adaptive: bool = False,
) -> list[tuple[int, float]]:
    """Reciprocal rank fusion as the SQL computes it: each arm ranked by score (BM25, descending) or
    distance (ascending) with ties by id; ``Σ w / (k + rank)``, the vector weight scaled by the keyword
    arm's second score over its first when ``adaptive``; the fused order by score, then id."""
    ranked_bm25 = sorted(bm25, key=lambda x: (-x[1], x[0]))
    bm_rank = {cid: r for r, (cid, _) in enumerate(ranked_bm25, start=1)}
    vec_rank = {cid: r for r, (cid, _) in enumerate(sorted(vector, key=lambda x: (x[1], x[0])), start=1)}
    contest = 1.0
    if adaptive and len(ranked_bm25) >= 2 and ranked_bm25[0][1] != 0:
        contest = ranked_bm25[1][1] / ranked_bm25[0][1]
    fused = []
    for cid in bm_rank.keys() | vec_rank.keys():
        a = weight_bm25 / (float(k) + bm_rank[cid]) if cid in bm_rank else 0.0
        v = weight_vector * contest / (float(k) + vec_rank[cid]) if cid in vec_rank else 0.0
        fused.append((cid, a + v))
    fused.sort(key=lambda x: (-x[1], x[0]))
    return fused[:limit]


def convex(
    bm25: Sequence[tuple[int, float]],
    vector: Sequence[tuple[int, float]],
    *,
    alpha: float,
    limit: int,
) -> list[tuple[int, float]]:
    """The convex combination as the SQL computes it: ``alpha × score / best score`` (BM25) plus
    ``(1 − alpha) × (2 − distance) / (2 − best distance)`` (cosine), 0 for an arm that did not return the
    chunk (or whose best is 0); the fused order by score, then id."""
    bm25_top = max((score for _, score in bm25), default=0.0)
    vector_top = min((distance for _, distance in vector), default=2.0)
    keyword = {cid: alpha * (score / bm25_top) for cid, score in bm25} if bm25_top != 0 else {}
    dense = {cid: (1.0 - alpha) * ((2.0 - d) / (2.0 - vector_top)) for cid, d in vector} if vector_top != 2 else {}
    ids = {cid for cid, _ in bm25} | {cid for cid, _ in vector}
    fused = [(cid, keyword.get(cid, 0.0) + dense.get(cid, 0.0)) for cid in ids]
    fused.sort(key=lambda x: (-x[1], x[0]))
    return fused[:limit]


def _vector_plan(conn: Conn, caller: Caller, filters_sql: sql.Composable, params: dict[str, Any], space: int) -> str:
    """Exact scan when the planner expects the filter to leave at most ``exact_max_rows`` chunks."""
    if params["exact_max_rows"] <= 0:
        return "hnsw"
    query = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM chunks c WHERE c.embedding_space_id = {} AND {} {}").format(
        sql.Literal(space), _ACCESS, filters_sql
    )
    row = conn.execute(query, params).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(str(row[0]))
    estimated = float(plan[0]["Plan"]["Plan Rows"])
    return "exact" if estimated <= params["exact_max_rows"] else "hnsw"


def search(
    conn: Conn,
    *,
    caller: Caller,
    mode: Mode,
    tokenizer: Tokenizer,
    query_text: str,
    query_vector: npt.NDArray[np.float32] | None,
    space: EmbeddingSpace,
    params: SearchParams,
    filters: Filters | None = None,
) -> SearchResult:
    """Run the arms ``mode`` asks for and their fusion as one statement (in a transaction of its own,
    for the ``SET LOCAL`` of the HNSW scan)."""
    if not caller.groups:
        return SearchResult([], [], "none")
    terms = tokenizer.tokens(query_text) if mode != "vector" else []
    counts = Counter(terms)
    filters_sql, values = _filters_sql(filters or Filters())
    values |= {
        "tenant": caller.tenant_id,
        "groups": list(caller.groups),
        "terms": list(counts),
        "qf": [float(n) for n in counts.values()],
        "tsquery": tsquery_any(list(counts)),
        "k1": params.k1,
        "b": params.b,
        "epsilon": params.epsilon,
        "arm_k": params.arm_k,
        "rrf_k": params.rrf_k,
        "w_bm25": params.weight_bm25 if mode != "vector" else 0.0,
        "w_vector": params.weight_vector if mode != "bm25" else 0.0,
        "adaptive": params.adaptive,
        "alpha": {"bm25": 1.0, "vector": 0.0}.get(mode, params.alpha),
        "limit": params.limit,
        "exact_max_rows": params.exact_max_rows,
    }
    use_bm25 = mode != "vector" and bool(counts)
    use_vector = mode != "bm25" and query_vector is not None
    ctes: list[sql.Composable] = [keyword_arm(filters_sql) if use_bm25 else _NO_BM25]
    started = time.monotonic()
    try:
        candidates, plan = _run(
            conn, caller, ctes, values, space, params, filters_sql, query_vector if use_vector else None
        )
    except errors.QueryCanceled as exc:
        # Ours when it came at our limit (the server's message is in its own language; a cancel is not).
        if not params.timeout_ms or (time.monotonic() - started) * 1000 < params.timeout_ms * 0.9:
            raise
        raise SourcebookError(
            ErrorCode.TIMEOUT,
            f"the search ran past SOURCEBOOK_SEARCH_TIMEOUT_MS ({params.timeout_ms} ms)",
            hint="retry; if it persists, run ANALYZE on the database (the planner may not know a tenant's new "
            "documents yet) or raise the limit",
        ) from exc
    if use_bm25:
        _cache_avg_idf(conn, caller.tenant_id)
    return SearchResult(candidates, terms, plan)


def _run(
    conn: Conn,
    caller: Caller,
    ctes: list[sql.Composable],
    values: dict[str, Any],
    space: EmbeddingSpace,
    params: SearchParams,
    filters_sql: sql.Composable,
    query_vector: npt.NDArray[np.float32] | None,
) -> tuple[list[Candidate], str]:
    """The statement, in a transaction of its own (for its ``SET LOCAL``s); the candidates and the vector plan."""
    plan = "none"
    with conn.transaction():
        previous = None
        if params.timeout_ms:
            # Set for this statement only: inside a caller's transaction this block is a savepoint, whose
            # SET LOCAL would outlive it, so the caller's value is put back after the statement.
            row = conn.execute(
                "SELECT current_setting('statement_timeout'), set_config('statement_timeout', %s, true)",
                (f"{params.timeout_ms}ms",),
            ).fetchone()
            previous = str(row[0]) if row else None
        if query_vector is not None:
            plan = _vector_plan(conn, caller, filters_sql, values, space.id)
            distance = sql.SQL("c.embedding::vector({dim}) <=> %(vector)s::vector({dim})").format(
                dim=sql.Literal(space.dim)
            )
            # "+ 0" hides the ORDER BY from the HNSW index: an exact scan of the filtered rows.
            order = sql.SQL("({}) + 0").format(distance) if plan == "exact" else distance
            ctes.append(
                _VECTOR.format(
                    distance=distance, space=sql.Literal(space.id), access=_ACCESS, filters=filters_sql, order=order
                )
            )
            values["vector"] = np.asarray(query_vector, dtype=np.float32)
            if plan == "hnsw":
                conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(params.ef_search)))
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        else:
            ctes.append(_NO_VECTOR)
        ctes.append(CONVEX_FUSION if params.fusion == "convex" else FUSION)
        statement = sql.SQL("WITH ") + sql.SQL(",\n").join(ctes) + _RESULT
        candidates = conn.cursor(row_factory=kwargs_row(_candidate)).execute(statement, values).fetchall()
        if previous is not None:
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (previous,))
    return candidates, plan


def _candidate(**row: Any) -> Candidate:
    row["heading_path"] = tuple(row["heading_path"] or ())
    flags, score, screen = row.pop("guard_flags"), row.pop("guard_score"), row.pop("guard_screen")
    row["mark"] = None if screen is None else ChunkMark(tuple(flags or ()), score, screen)
    return Candidate(**row)


def _cache_avg_idf(conn: Conn, tenant_id: str) -> None:
    """Store the vocabulary's mean idf once per change of the statistics (a write clears it). Guarded by
    the version read in the same snapshot, so a value computed before a concurrent write is dropped."""
    conn.execute(
        "UPDATE bm25_stats s SET avg_idf = x.avg_idf "
        "FROM (SELECT st.version, (SELECT avg(ln(st.n - t.df + 0.5::float8) - ln(t.df + 0.5::float8)) "
        "      FROM bm25_terms t WHERE t.tenant_id = st.tenant_id) AS avg_idf "
        "      FROM bm25_stats st WHERE st.tenant_id = %(tenant)s AND st.avg_idf IS NULL) x "
        "WHERE s.tenant_id = %(tenant)s AND s.version = x.version AND s.avg_idf IS NULL AND x.avg_idf IS NOT NULL",
        {"tenant": tenant_id},
    )
