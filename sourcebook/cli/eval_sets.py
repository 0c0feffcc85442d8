"""``sourcebook eval build-set|import-set|export-set|sets``: golden sets stored in PostgreSQL, built from
SQuAD, HaluEval-QA, feedback or the review queue, imported from and exported to the folder format."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sourcebook.cli import console, state, table
from sourcebook.db import open_database
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

if TYPE_CHECKING:
    from evals.goldens import GoldenSet


def _read_json(path: Path) -> object:
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"cannot read {path}: {exc}") from exc


def _since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"--since {value!r} is not a date (YYYY-MM-DD)") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def build_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="the set's name (a stored set of that name is replaced)")],
    from_squad: Annotated[Path | None, typer.Option(help="a SQuAD v1.1 JSON file: paragraphs become documents")] = None,
    from_halueval: Annotated[Path | None, typer.Option(help="HaluEval-QA JSONL: knowledge becomes documents")] = None,
    from_feedback: Annotated[bool, typer.Option("--from-feedback", help="a tenant's votes and corrections")] = False,
    from_reviews: Annotated[
        bool, typer.Option("--from-reviews", help="a tenant's approved and corrected reviews")
    ] = False,
    tenant: Annotated[str | None, typer.Option(help="the tenant of --from-feedback / --from-reviews")] = None,
    since: Annotated[str | None, typer.Option(help="only feedback or reviews since this date (YYYY-MM-DD)")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="a seeded sample of N questions")] = None,
    seed: Annotated[int, typer.Option(help="the sample's seed")] = 1,
    abstain_from: Annotated[str | None, typer.Option(help="add questions of this stored set (or folder)")] = None,
    abstain: Annotated[int, typer.Option(min=0, help="how many --abstain-from questions: answered by abstaining")] = 0,
    out: Annotated[Path | None, typer.Option(help="also export the set (and its corpus) to this folder")] = None,
) -> None:
    """Build a golden set from one source and store it; abstention items come from another set's questions."""
    from evals import store
    from evals.goldens import write_set

    settings = state(ctx).settings
    sources = [from_squad is not None, from_halueval is not None, from_feedback, from_reviews]
    if sum(sources) != 1:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            "name exactly one source: --from-squad FILE, --from-halueval FILE, --from-feedback or --from-reviews",
        )
    root = out or settings.data_dir / "evals" / "sets"
    golden, corpus = _build(settings, name, root, from_squad, from_halueval, from_reviews, tenant, since, limit, seed)
    if abstain_from is not None and abstain:
        golden = _add_abstentions(settings, golden, abstain_from, abstain, seed)
    with open_database(settings) as db, db.pool.connection() as conn:
        store.save_set(conn, golden, corpus_path=corpus)
    if out is not None:
        write_set(out, golden)
    abstaining = sum(i.must_abstain for i in golden.items)
    console.print(f"{golden.name}: {len(golden.items)} items ({abstaining} to abstain) over corpus {golden.corpus}")


def _build(
    settings: Settings,
    name: str,
    root: Path,
    squad: Path | None,
    halueval: Path | None,
    reviews: bool,
    tenant: str | None,
    since: str | None,
    limit: int | None,
    seed: int,
) -> tuple[GoldenSet, Path | None]:
    from evals import harvest, sources
    from evals.goldens import GoldenSet as Golden

    if squad is not None:
        data = _read_json(squad)
        assert isinstance(data, dict)
        corpus = root / "corpora" / name
        return sources.squad_set(data, corpus, name=name, limit=limit, seed=seed), corpus
    if halueval is not None:
        rows = _read_json(halueval)
        assert isinstance(rows, list)
        corpus = root / "corpora" / name
        return sources.halueval_set(rows, corpus, name=name, limit=limit, seed=seed), corpus
    if tenant is None:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "--from-feedback and --from-reviews need --tenant")
    with open_database(settings) as db, db.pool.connection() as conn:
        harvested = (harvest.from_reviews if reviews else harvest.from_feedback)(
            conn, tenant=tenant, since=_since(since)
        )
    kind = "reviews" if reviews else "feedback"
    items = tuple(sources.pick(harvested, limit=limit, seed=seed))
    return Golden(name, tenant, items, f"{len(items)} items from tenant {tenant}'s {kind}"), None


def _add_abstentions(settings: Settings, golden: GoldenSet, other: str, count: int, seed: int) -> GoldenSet:
    from evals import sources, store
    from evals.goldens import read_set

    folder = Path(other)
    if folder.is_dir():
        others = read_set(folder).items
    else:
        with open_database(settings) as db, db.pool.connection() as conn:
            others = store.load_set(conn, other).golden.items
    return sources.with_abstentions(golden, others, count=count, seed=seed)


def import_set(
    ctx: typer.Context, folder: Annotated[Path, typer.Argument(help="a set folder: set.json, items.jsonl")]
) -> None:
    """Store a set folder (its corpus is the folder's corpora/<corpus>, asked in tenant eval-<corpus>)."""
    from evals import store
    from evals.goldens import read_set

    golden = read_set(folder)
    corpus = golden.corpus_dir if golden.corpus_dir.is_dir() else None
    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        store.save_set(conn, golden, corpus_path=corpus)
    console.print(f"{golden.name}: {len(golden.items)} items stored")


def export_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the stored set")],
    out: Annotated[Path, typer.Option(help="the folder the set's folder goes in")],
) -> None:
    """Write a stored set back to the folder format (set.json, items.jsonl); its corpus is not copied."""
    from evals import store
    from evals.goldens import write_set

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        stored = store.load_set(conn, name)
    folder = write_set(out, stored.golden)
    console.print(f"{name}: {len(stored.golden.items)} items written to {folder}")


def list_sets(ctx: typer.Context) -> None:
    """The stored golden sets."""
    from evals import store

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        rows = store.list_sets(conn)
    out = table("set", "version", "corpus", "items", title="golden sets")
    for name, version, corpus, count in rows:
        out.add_row(name, str(version), corpus, str(count))
    console.print(out)
