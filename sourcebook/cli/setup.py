"""``sourcebook doctor`` and ``sourcebook quickstart``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from sourcebook import keys as key_repo
from sourcebook.cli import console, err_console, state, table
from sourcebook.cli.answer import ask, serve
from sourcebook.cli.ingest import ingest_paths, print_summary
from sourcebook.cli.search import search
from sourcebook.cli.tune import calibrate_here
from sourcebook.db import Conn, open_database
from sourcebook.doctor import Check, run_checks
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings
from sourcebook.telemetry import quiet_job_logs

_MARKS = {"ok": Text("ok", "green"), "warn": Text("warn", "yellow"), "fail": Text("FAIL", "bold red")}
QUICKSTART_TENANT = "demo"
QUICKSTART_GROUPS = ("everyone",)
QUICKSTART_QUESTION = "What is the nightly hotel cap under the current travel policy?"
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def print_checks(checks: list[Check]) -> bool:
    """Print the checks as a table; True when none failed."""
    out = table("check", "status", "detail", "how to fix", title="sourcebook doctor")
    for check in checks:
        out.add_row(check.name, _MARKS[check.status], check.detail, check.fix)
    console.print(out)
    return all(check.status != "fail" for check in checks)


def check_injection_screen(settings: Settings) -> Check:
    """The screen ingestion marks chunks with: rules alone until the classifier is trained."""
    from guardrails.screen import load_screen

    screen = load_screen(settings.data_dir)
    if screen.classifier is None:
        return Check(
            "injection screen",
            "warn",
            f"{screen.name}: rules alone, no classifier trained",
            "run `sourcebook guard train`, then `sourcebook guard scan` to re-mark stored chunks",
        )
    return Check("injection screen", "ok", screen.name)


def _gain(figures: Mapping[str, Any]) -> str:
    gain = figures.get("held_out", {}).get("gain")
    return f"{gain:+.4f}" if isinstance(gain, int | float) else "?"


def check_trained_rerankers(conn: Conn) -> Check:
    """Each tenant's newest trained reranker, on or off, and whether a switched-on one's model is there."""
    from retrieval.rerank import trained_rerankers

    found = trained_rerankers(conn)
    if not found:
        return Check("trained rerankers", "ok", "none trained (`sourcebook reranker train --tenant T`)")
    missing = [t for t in found if t.enabled and not Path(t.model_path).is_dir()]
    detail = "; ".join(
        f"{t.tenant_id} {'on' if t.enabled else 'off'} ({_gain(t.figures)} MRR@10 held out)" for t in found
    )
    if missing:
        return Check(
            "trained rerankers",
            "fail",
            f"{detail}; model folder missing for {', '.join(t.tenant_id for t in missing)}",
            "train again (`sourcebook reranker train --tenant T`) or `sourcebook reranker off --tenant T`",
        )
    return Check("trained rerankers", "ok", detail)


def doctor(ctx: typer.Context) -> None:
    """Check Python, torch, the database, pgvector, migrations, models, the model server and the
    injection screen."""
    settings = state(ctx).settings
    if not print_checks([*run_checks(settings, [check_trained_rerankers]), check_injection_screen(settings)]):
        raise typer.Exit(1)


def development_key(settings: Settings) -> str:
    """The quickstart's key: reused from the data dir while it stays valid, else created (0600 file)."""
    path: Path = settings.data_dir / "quickstart.key"
    pepper = settings.key_pepper.get_secret_value()
    with open_database(settings) as db, db.pool.connection() as conn:
        key_repo.ensure_tenant(conn, QUICKSTART_TENANT, "Demo company")
        if path.is_file():
            try:
                key_repo.verify_key(conn, token=path.read_text(), pepper=pepper)
                return path.read_text().strip()
            except SourcebookError:
                err_console.print(f"the saved development key in {path} is no longer valid; making a new one")
        new = key_repo.create_key(
            conn,
            tenant_id=QUICKSTART_TENANT,
            name="quickstart (development)",
            scopes=key_repo.SCOPES,
            groups=QUICKSTART_GROUPS,
            pepper=pepper,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(new.token + "\n")
    return new.token


def quickstart(
    ctx: typer.Context,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve", help="leave the API running at the end")] = True,
    port: Annotated[int, typer.Option(help="the API's port")] = 8000,
) -> None:
    """Run the embedded set-up end to end: database, migrations, a development key, doctor, the sample
    documents ingested, a search over them, a question answered with citations, then the API."""
    settings = state(ctx).settings
    if settings.environment != "development":
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            "quickstart is for development set-ups only",
            hint="unset SOURCEBOOK_ENVIRONMENT or set it to development",
        )
    # The demo's steps show progress bars and tables; the job queue's INFO lines would bury them.
    with quiet_job_logs():
        token = _demo(ctx, settings)
    if serve_api:
        console.rule(f"the API, on http://127.0.0.1:{port} (Ctrl-C stops it)")
        console.print(_examples(token, port), highlight=False, markup=False, soft_wrap=True)
        serve(ctx, host="127.0.0.1", port=port)


def _demo(ctx: typer.Context, settings: Settings) -> str:
    """Key, doctor, ingestion, a search and a question; returns the development key."""
    token = development_key(settings)
    console.print(
        f"[bold]tenant[/] {QUICKSTART_TENANT}, groups {', '.join(QUICKSTART_GROUPS)}; "
        f"development key (saved in {settings.data_dir / 'quickstart.key'}):"
    )
    console.print(token, highlight=False, soft_wrap=True)
    if not print_checks(run_checks(settings, [check_trained_rerankers])):
        raise typer.Exit(1)
    _injection_classifier(settings)
    console.rule(f"ingesting the sample documents ({SAMPLES})")
    results = ingest_paths(settings, [SAMPLES], tenant=QUICKSTART_TENANT, groups=[], public=False, sync=True, wait=True)
    if print_summary(results):
        raise typer.Exit(1)
    _calibration(settings)
    console.rule(f"searching as a member of {', '.join(QUICKSTART_GROUPS)}: {QUICKSTART_QUESTION}")
    search(
        ctx,
        QUICKSTART_QUESTION,
        tenant=QUICKSTART_TENANT,
        groups=",".join(QUICKSTART_GROUPS),
        mode="hybrid",
        top_k=3,
        explain=True,
        as_json=False,
    )
    console.rule(f"asking as a member of {', '.join(QUICKSTART_GROUPS)}: {QUICKSTART_QUESTION}")
    ask(ctx, QUICKSTART_QUESTION, key=None, tenant=QUICKSTART_TENANT, groups=",".join(QUICKSTART_GROUPS))
    return token


def _injection_classifier(settings: Settings) -> None:
    """Trains the guards' injection classifier once (~10 s, deterministic, on data inside a wheel), so
    that the samples are screened and the questions checked with it, not with the rules alone."""
    from guardrails.classifier import load_examples, model_path, train

    path = model_path(settings.data_dir)
    if path.is_file():
        return
    with console.status("training the prompt-injection classifier (once, ~10 s)"):
        train(load_examples("train"), load_examples("validation")).save(path)
    console.print(f"injection classifier: {path}")


def _calibration(settings: Settings) -> None:
    """Calibrates the demo tenant's retrieval on the samples, here and once: the calibration an ingest
    queues runs in a worker, and the quickstart's own worker stops when the ingest is done. On the
    headings' questions: the model writing 200 questions would hold the quickstart for minutes on a
    CPU (`sourcebook tune retrieval --tenant demo` does that)."""
    from retrieval.tuning import latest

    with open_database(settings) as db:
        with db.pool.connection() as conn:
            if latest(conn, QUICKSTART_TENANT) is not None:
                return
        done = calibrate_here(settings, db, QUICKSTART_TENANT, model_questions=False)
    held, stored = done.figures["held_out"], done.figures["stored_on_held_out"]
    console.print(
        f"[bold]retrieval calibrated[/] on {done.questions} questions from {done.question_source}: "
        f"{done.tuning.label()}; held-out nDCG@10 {stored['ndcg@10']} (default {held['default']}, "
        f"BM25 {held['bm25']}, vector {held['vector']})"
    )
    for note in done.notes:
        err_console.print(f"[yellow]note[/]: {note}")


def _examples(token: str, port: int) -> str:
    question = "How do I request a new laptop?"
    return f"""Ask it with curl:

curl -s http://127.0.0.1:{port}/v1/chat/completions \\
  -H "Authorization: Bearer {token}" -H "Content-Type: application/json" \\
  -d '{{"model": "sourcebook", "messages": [{{"role": "user", "content": "{question}"}}]}}'

or with the official openai client (streamed; new citations also arrive in the chunks that complete them):

.venv/bin/python - <<'EOF'
from openai import OpenAI
client = OpenAI(base_url="http://127.0.0.1:{port}/v1", api_key="{token}")
stream = client.chat.completions.create(
    model="sourcebook", stream=True, messages=[{{"role": "user", "content": "{question}"}}]
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    final = (chunk.model_extra or {{}}).get("sourcebook")
    if final:  # the last chunk: every citation, and the verdict
        print()
        for citation in chunk.model_extra["citations"]:
            print(f"[{{citation['number']}}] {{citation['title']}} - {{citation['uri']}}")
        print(final["verdict"]["outcome"], final["answer_id"])
EOF
"""


def register(app: typer.Typer) -> None:
    app.command()(doctor)
    app.command()(quickstart)
