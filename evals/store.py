"""The eval repository: golden sets and their items, runs with one row per scored item, and each set's
baseline run. All SQL of ``eval_sets``, ``eval_items``, ``eval_runs``, ``eval_results`` and
``eval_baselines`` is here, with bound parameters; the caller owns the transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from evals.answers import Scored
from evals.goldens import GoldenItem, GoldenSet
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError


def _rows(conn: Conn, query: str, params: Sequence[object] | dict[str, object]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _one(conn: Conn, query: str, params: Sequence[object] | dict[str, object]) -> dict[str, Any] | None:
    rows = _rows(conn, query, params)
    return rows[0] if rows else None


@dataclass(frozen=True, slots=True)
class StoredSet:
    id: int
    golden: GoldenSet
    corpus_path: Path | None


@dataclass(frozen=True, slots=True)
class RunConfig:
    """What a run asked with: the tenant whose documents answer, the answer settings, the items' sample."""

    tenant: str
    prompt_version: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_passages: int | None = None
    limit: int | None = None
    seed: int = 1
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__slots__})


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    set_id: int
    set_name: str
    set_version: int
    config: RunConfig
    status: str
    metrics: dict[str, Any] | None
    started_at: dt.datetime
    finished_at: dt.datetime | None


def save_set(conn: Conn, golden: GoldenSet, *, corpus_path: Path | None) -> int:
    """Insert or replace the set named ``golden.name`` (its items replaced in one go); returns its id."""
    row = _one(
        conn,
        """
        INSERT INTO eval_sets (name, version, corpus, corpus_path, description)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, corpus = EXCLUDED.corpus,
            corpus_path = EXCLUDED.corpus_path, description = EXCLUDED.description, updated_at = now()
        RETURNING id
        """,
        (
            golden.name,
            golden.version,
            golden.corpus,
            None if corpus_path is None else str(corpus_path),
            golden.description,
        ),
    )
    assert row is not None
    set_id = int(row["id"])
    conn.execute("DELETE FROM eval_items WHERE set_id = %s", (set_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO eval_items (set_id, item_id, position, item) VALUES (%s, %s, %s, %s)",
            [(set_id, item.id, n, Jsonb(item.to_json())) for n, item in enumerate(golden.items)],
        )
    return set_id


def load_set(conn: Conn, name: str) -> StoredSet:
    """The stored set ``name`` with its items in their order; an unknown name is ``not_found``."""
    row = _one(conn, "SELECT id, version, corpus, corpus_path, description FROM eval_sets WHERE name = %s", (name,))
    if row is None:
        raise SourcebookError(
            ErrorCode.NOT_FOUND,
            f"no eval set named {name!r}",
            hint="import one with `sourcebook eval import-set DIR` or build one with `sourcebook eval build-set`",
        )
    items = _rows(conn, "SELECT item FROM eval_items WHERE set_id = %s ORDER BY position", (row["id"],))
    golden = GoldenSet(
        name, row["corpus"], tuple(GoldenItem.from_json(i["item"]) for i in items), row["description"], row["version"]
    )
    path = row["corpus_path"]
    return StoredSet(int(row["id"]), golden, None if path is None else Path(path))


def list_sets(conn: Conn) -> list[tuple[str, int, str, int]]:
    """(name, version, corpus, item count) of every stored set, by name."""
    rows = _rows(
        conn,
        """
        SELECT s.name, s.version, s.corpus, count(i.item_id) AS items
        FROM eval_sets s LEFT JOIN eval_items i ON i.set_id = s.id
        GROUP BY s.id ORDER BY s.name
        """,
        (),
    )
    return [(r["name"], r["version"], r["corpus"], r["items"]) for r in rows]


def create_run(conn: Conn, stored: StoredSet, config: RunConfig) -> int:
    row = _one(
        conn,
        "INSERT INTO eval_runs (set_id, set_version, config) VALUES (%s, %s, %s) RETURNING id",
        (stored.id, stored.golden.version, Jsonb(config.to_json())),
    )
    assert row is not None
    return int(row["id"])


def add_result(conn: Conn, run_id: int, result: Scored) -> None:
    """Record one scored item; scoring it again (a resumed run) replaces the row."""
    conn.execute(
        """
        INSERT INTO eval_results (run_id, item_id, result, answer_id) VALUES (%s, %s, %s, %s)
        ON CONFLICT (run_id, item_id) DO UPDATE SET result = EXCLUDED.result, answer_id = EXCLUDED.answer_id
        """,
        (run_id, result.id, Jsonb(result.to_json()), result.answer_id),
    )


def finish_run(conn: Conn, run_id: int, metrics: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE eval_runs SET status = 'finished', metrics = %s, finished_at = now() WHERE id = %s",
        (Jsonb(metrics), run_id),
    )


def load_run(conn: Conn, run_id: int) -> Run:
    """A run with its set's name; an unknown id is ``not_found``."""
    row = _one(
        conn,
        """
        SELECT r.id, r.set_id, s.name AS set_name, r.set_version, r.config, r.status, r.metrics,
               r.started_at, r.finished_at
        FROM eval_runs r JOIN eval_sets s ON s.id = r.set_id WHERE r.id = %s
        """,
        (run_id,),
    )
    if row is None:
        raise SourcebookError(
            ErrorCode.NOT_FOUND, f"no eval run {run_id}", hint="list runs with `sourcebook eval runs`"
        )
    return Run(**{**row, "config": RunConfig.from_json(row["config"])})


def run_results(conn: Conn, run_id: int) -> list[Scored]:
    rows = _rows(conn, "SELECT result FROM eval_results WHERE run_id = %s ORDER BY created_at, item_id", (run_id,))
    return [Scored.from_json(r["result"]) for r in rows]


def list_runs(conn: Conn, *, set_name: str | None, limit: int) -> list[Run]:
    """The newest runs first, of one set or of all."""
    rows = _rows(
        conn,
        """
        SELECT r.id FROM eval_runs r JOIN eval_sets s ON s.id = r.set_id
        WHERE %(name)s::text IS NULL OR s.name = %(name)s
        ORDER BY r.id DESC LIMIT %(limit)s
        """,
        {"name": set_name, "limit": limit},
    )
    return [load_run(conn, int(r["id"])) for r in rows]


def set_baseline(conn: Conn, set_id: int, run_id: int) -> None:
    conn.execute(
        """
        INSERT INTO eval_baselines (set_id, run_id) VALUES (%s, %s)
        ON CONFLICT (set_id) DO UPDATE SET run_id = EXCLUDED.run_id, updated_at = now()
        """,
        (set_id, run_id),
    )


def baseline_run(conn: Conn, set_id: int) -> int | None:
    row = _one(conn, "SELECT run_id FROM eval_baselines WHERE set_id = %s", (set_id,))
    return None if row is None else int(row["run_id"])


def add_meta_eval(conn: Conn, dataset: str, figures: dict[str, Any]) -> None:
    conn.execute("INSERT INTO eval_meta (dataset, figures) VALUES (%s, %s)", (dataset, Jsonb(figures)))


def latest_meta_eval(conn: Conn) -> tuple[str, dict[str, Any], dt.datetime] | None:
    """The newest meta-eval: (dataset, figures, when)."""
    row = _one(conn, "SELECT dataset, figures, created_at FROM eval_meta ORDER BY id DESC LIMIT 1", ())
    return None if row is None else (row["dataset"], row["figures"], row["created_at"])
