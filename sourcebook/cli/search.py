"""``sourcebook search`` and ``sourcebook glossary``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.text import Text

from sourcebook.cli import console, err_console, split_csv, state, table
from sourcebook.db import open_database
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import ensure_tenant

if TYPE_CHECKING:
    from retrieval.types import ChunkMark

glossary_app = typer.Typer(help="The per-tenant glossary the query rewriter expands acronyms and synonyms with.")


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def mark_cell(mark: ChunkMark | None) -> Text:
    """A chunk's injection mark in one table cell: its flags and classifier score, or why there is none."""
    if mark is None:
        return Text("not scanned")
    score = " · rules only" if mark.score is None else f" · classifier {mark.score:.2f}"
    if mark.flagged:
        return Text.assemble(("flagged", "bold red"), f": {', '.join(mark.flags)}{score}")
    return Text(f"clean{score}")


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="what to look for")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="the tenant to search")],
    groups: Annotated[str, typer.Option("--groups", "-g", help="the caller's access groups, comma-separated")],
    mode: Annotated[str, typer.Option(help="bm25, vector or hybrid")] = "hybrid",
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=200, help="passages to show")] = 8,
    explain: Annotated[
        bool, typer.Option("--explain", help="show each arm's rank and score, and each passage's injection mark")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Rank passages for a query, as the caller with these groups may see them."""
    from ingest.embed import query_embedder
    from retrieval.pipeline import RetrievalPipeline
    from retrieval.types import MODES, Caller, passage_json

    if mode not in MODES:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"unknown mode {mode!r}", hint="use bm25, vector or hybrid")
    settings = state(ctx).settings
    with open_database(settings) as db:
        pipeline = RetrievalPipeline(settings=settings, pool=db.pool, space=db.space, embedder=query_embedder(settings))
        result = pipeline.retrieve(
            query,
            caller=Caller(tenant, tuple(split_csv(groups))),
            mode=mode,
            top_k=top_k,
        )
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "query": query,
                    "rewritten": result.rewrite.text,
                    "terms": result.terms,
                    "mode": mode,
                    "vector_plan": result.vector_plan,
                    "retrieval_settings": result.tuning,
                    "reranker": result.reranker,
                    "timings_ms": result.timings_ms,
                    "passages": [passage_json(rank, p) for rank, p in enumerate(result.passages, start=1)],
                }
            )
        )
        return
    if result.rewrite.text != query.strip():
        err_console.print(f"[dim]searched for:[/] {escape(result.rewrite.text)}", highlight=False)
    columns = ["#", "document", "page", "passage"]
    if explain:
        columns[1:1] = ["score", "bm25 rank", "bm25 score", "vector rank", "cosine", "injection"]
    out = table(*columns, title=f"{len(result.passages)} passages ({mode})")
    for rank, p in enumerate(result.passages, start=1):
        row: list[str | Text] = [str(rank), p.title or p.source_uri, str(p.page or ""), _snippet(p.text)]
        if explain:
            row[1:1] = [
                f"{p.score:.4f}",
                str(p.bm25_rank or "–"),
                f"{p.bm25_score:.3f}" if p.bm25_score is not None else "–",
                str(p.vector_rank or "–"),
                f"{1 - p.vector_distance:.3f}" if p.vector_distance is not None else "–",
                mark_cell(p.mark),
            ]
        out.add_row(*row)
    console.print(out)
    if explain:
        timings = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings_ms.items())
        err_console.print(
            f"[dim]terms: {escape(' '.join(result.terms)) or '(none)'} · vector plan: {result.vector_plan} · "
            f"fusion: {result.tuning} · reranker: {result.reranker} · {timings}[/]",
            highlight=False,
        )
        screens = sorted({p.mark.screen for p in result.passages if p.mark is not None})
        unscanned = sum(p.mark is None for p in result.passages)
        err_console.print(
            f"[dim]injection screen: {', '.join(screens) or '–'}"
            + (f" · {unscanned} passages not scanned yet (`sourcebook guard scan`)" if unscanned else "")
            + "[/]",
            highlight=False,
        )


@glossary_app.command("set")
def glossary_set(
    ctx: typer.Context,
    term: Annotated[str, typer.Argument(help="the term as users write it (e.g. PTO)")],
    expansions: Annotated[list[str], typer.Argument(help="what to add to queries that use it")],
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
) -> None:
    """Add or replace a glossary entry."""
    from retrieval import glossary

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        ensure_tenant(conn, tenant)
        glossary.set_term(conn, tenant_id=tenant, term=term, expansions=expansions)
    console.print(f"{term} → {', '.join(expansions)}", markup=False)


@glossary_app.command("list")
def glossary_list(ctx: typer.Context, tenant: Annotated[str, typer.Option("--tenant", "-t")]) -> None:
    """The tenant's glossary."""
    from retrieval import glossary

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        entries = glossary.terms(conn, tenant_id=tenant)
    out = table("term", "expansions", title=f"glossary of {tenant}")
    for term, extra in entries.items():
        out.add_row(term, "; ".join(extra))
    console.print(out)


@glossary_app.command("remove")
def glossary_remove(
    ctx: typer.Context, term: Annotated[str, typer.Argument()], tenant: Annotated[str, typer.Option("--tenant", "-t")]
) -> None:
    """Remove a glossary entry."""
    from retrieval import glossary

    with open_database(state(ctx).settings) as db, db.pool.connection() as conn:
        if not glossary.remove_term(conn, tenant_id=tenant, term=term):
            raise SourcebookError(ErrorCode.NOT_FOUND, f"{term!r} is not in the glossary of {tenant}")
    console.print(f"removed {term}", markup=False)


def register(app: typer.Typer) -> None:
    app.command()(search)
    app.add_typer(glossary_app, name="glossary")
