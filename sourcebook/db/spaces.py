"""Embedding spaces: one per embedding model, each with its own HNSW index.

``chunks.embedding`` is an untyped ``vector`` column, so models of any dimension can live side by
side; each space gets a partial expression index over ``embedding::vector(dim)`` restricted to its
rows (the pattern pgvector documents for mixed dimensions). Queries name the space and cast to its
dimension, so vectors of two models are never compared, and changing models needs no migration.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from sourcebook.errors import ErrorCode, SourcebookError


@dataclass(frozen=True, slots=True)
class EmbeddingSpace:
    id: int
    model: str
    dim: int

    @property
    def index_name(self) -> str:
        return f"chunks_embedding_hnsw_s{self.id}"


def hnsw_index_sql(space: EmbeddingSpace) -> sql.Composed:
    """The partial cosine HNSW index of one space (bound values are literals: DDL takes no params)."""
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {name} ON chunks USING hnsw ((embedding::vector({dim})) vector_cosine_ops) "
        "WHERE embedding_space_id = {space}"
    ).format(name=sql.Identifier(space.index_name), dim=sql.Literal(space.dim), space=sql.Literal(space.id))


def ensure_space(conn: psycopg.Connection[tuple[object, ...]], *, model: str, dim: int) -> EmbeddingSpace:
    """Register ``model`` (idempotent) and make sure its index exists; refuses a changed dimension."""
    conn.execute(
        "INSERT INTO embedding_spaces (model, dim) VALUES (%s, %s) ON CONFLICT (model) DO NOTHING",
        (model, dim),
    )
    row = conn.execute("SELECT id, dim FROM embedding_spaces WHERE model = %s", (model,)).fetchone()
    assert row is not None
    space = EmbeddingSpace(id=int(str(row[0])), model=model, dim=int(str(row[1])))
    if space.dim != dim:
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            f"embedding model {model!r} is registered with dimension {space.dim}, settings say {dim}",
            hint="set SOURCEBOOK_EMBEDDING_DIM to the model's real dimension",
        )
    conn.execute(hnsw_index_sql(space))
    return space
