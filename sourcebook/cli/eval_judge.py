"""``sourcebook eval judge|meta-eval``: ragas' LLM metrics on a stored run with the local judge, and the
judges' agreement with HaluEval-QA's labels (ragas Faithfulness and the groundedness guard)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sourcebook.cli import console, err_console, state, table
from sourcebook.db import open_database
from sourcebook.errors import ErrorCode, SourcebookError

if TYPE_CHECKING:
    from evals.judge import JudgeConfig

JudgeUrl = Annotated[str | None, typer.Option(help="the judge's OpenAI-compatible base URL (default: the LLM's)")]
JudgeModel = Annotated[str | None, typer.Option(help="the judge's served model name (default: the endpoint's first)")]
JudgeMode = Annotated[str, typer.Option(help="json_schema (vLLM structured output), json, or md_json (free text)")]
JudgeTimeout = Annotated[float, typer.Option(min=1, help="seconds per judge request")]


def _judge_config(base_url: str, model: str | None, mode: str, timeout: float, metrics: tuple[str, ...]) -> JudgeConfig:
    from evals.judge import METRICS, JudgeConfig

    if mode not in ("json_schema", "json", "md_json"):
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"--mode {mode!r}: expected json_schema, json or md_json")
    if model is None:
        try:
            reply = httpx.get(f"{base_url.rstrip('/')}/models", timeout=10)
            model = str(reply.json()["data"][0]["id"])
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            raise SourcebookError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"no judge model answers at {base_url}",
                hint="start one: `sourcebook llm serve`",
            ) from exc
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"unknown judge metrics {sorted(unknown)}; known: {METRICS}")
    return JudgeConfig(base_url, model, mode, timeout, metrics=metrics)  # type: ignore[arg-type]


def judge(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="the stored run whose answers are judged")],
    judge_url: JudgeUrl = None,
    judge_model: JudgeModel = None,
    mode: JudgeMode = "json_schema",
    timeout: JudgeTimeout = 120.0,
    metrics: Annotated[str, typer.Option(help="comma-separated ragas metrics")] = ",".join(
        ("faithfulness", "answer_relevancy", "context_precision", "context_recall", "factual_correctness")
    ),
    limit: Annotated[int | None, typer.Option(min=1, help="judge only the first N answers")] = None,
) -> None:
    """Score a stored run's answers with ragas (Faithfulness, AnswerRelevancy, ContextPrecisionWithReference,
    ContextRecall, FactualCorrectness) on the local judge; failures are counted per metric and kind."""
    from evals import judge as judging
    from evals import runner, store
    from evals.judge import Judge

    settings = state(ctx).settings
    config = _judge_config(
        judge_url or settings.llm_answer_urls[0], judge_model, mode, timeout, tuple(metrics.split(","))
    )
    with open_database(settings) as db, db.pool.connection() as conn:
        run = store.load_run(conn, run_id)
        if run.status != "finished":
            raise SourcebookError(
                ErrorCode.INVALID_REQUEST,
                f"run {run_id} is unfinished",
                hint=f"finish it first: `sourcebook eval answers --set {run.set_name} --resume {run_id}`",
            )
        results = [r for r in store.run_results(conn, run_id) if r.result != "error"][:limit]
        items = {i.id: i for i in store.load_set(conn, run.set_name).golden.items}
    scorer = Judge(config).build()
    judged_all: list[judging.Judged] = []
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console) as progress, open_database(settings) as db:
        bar = progress.add_task(f"judging run {run_id} ({config.model}, {mode})", total=len(results))
        for scored in results:
            item = items.get(scored.id)
            reference = None if item is None else item.reference_answer or next(iter(item.reference_contexts), None)
            judged = asyncio.run(
                scorer.score(judging.JudgeInput(scored.id, scored.question, scored.answer, scored.contexts, reference))
            )
            judged_all += judged
            scores = {**scored.scores, **{f"judge_{j.metric}": j.value for j in judged}}
            failures = {j.metric: f"{j.failure}: {j.detail}" for j in judged if j.failure is not None}
            with db.pool.connection() as conn:
                store.add_result(conn, run_id, replace(scored, scores=scores, judge_failures=failures))
            progress.advance(bar)
    counts = judging.failure_counts(judged_all)
    seconds = sorted(j.seconds for j in judged_all)
    with open_database(settings) as db, db.pool.connection() as conn:
        metrics_now = runner.run_metrics(store.run_results(conn, run_id))
        metrics_now["judge"] = {
            "model": config.model,
            "mode": mode,
            "failures": counts,
            "seconds_p50": seconds[len(seconds) // 2] if seconds else None,
        }
        store.finish_run(conn, run_id, metrics_now)
    _print_judge(counts, metrics_now, seconds)


def _print_judge(counts: dict[str, dict[str, int]], metrics: dict[str, object], seconds: list[float]) -> None:
    out = table("metric", "mean", "95% CI", "scored / items", "failures", title="ragas with the local judge")
    estimates = metrics["metrics"]
    assert isinstance(estimates, dict)
    for name, count in counts.items():
        est = estimates.get(f"judge_{name}", {})
        failed = ", ".join(f"{k} {v}" for k, v in count.items() if k not in ("items", "scored")) or "none"
        mean = "-" if est.get("mean") is None else f"{est['mean']:.3f}"
        ci = "-" if est.get("low") is None else f"[{est['low']:.3f}, {est['high']:.3f}]"
        out.add_row(name, mean, ci, f"{count['scored']} / {count['items']}", failed)
    console.print(out)
    if seconds:
        console.print(f"judge seconds per metric call: p50 {seconds[len(seconds) // 2]:.1f}, max {seconds[-1]:.1f}")
    print(json.dumps({"judge": metrics.get("judge")}))


def meta_eval(
    ctx: typer.Context,
    halueval: Annotated[
        Path, typer.Option(help="HaluEval-QA JSONL (knowledge, question, right and hallucinated answer)")
    ],
    limit: Annotated[int, typer.Option(min=1, help="a seeded sample of N questions (2N answers)")] = 50,
    seed: Annotated[int, typer.Option(help="the sample's seed")] = 1,
    with_ragas: Annotated[bool, typer.Option("--ragas/--no-ragas", help="also judge with ragas Faithfulness")] = True,
    judge_url: JudgeUrl = None,
    judge_model: JudgeModel = None,
    mode: JudgeMode = "json_schema",
    timeout: JudgeTimeout = 120.0,
) -> None:
    """The judges against HaluEval-QA's labels: balanced accuracy and AUROC of ragas Faithfulness and of
    the groundedness guard (stage 1), stored so that every answer-eval report shows them."""
    from evals import meta, sources, store
    from evals.judge import Judge
    from guardrails.figures import halueval_judged
    from guardrails.groundedness import Stage1

    settings = state(ctx).settings
    rows = [json.loads(line) for line in halueval.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [rows[n] for n in sources.sample_indices(len(rows), limit, seed)]
    guard = halueval_judged(Stage1(), rows, range(len(rows)))
    verdicts = [
        meta.Verdicts(
            "groundedness guard (stage 1)",
            tuple(j.hallucinated for j in guard),
            tuple(1.0 - j.score for j in guard),
            tuple(j.flagged for j in guard),
        )
    ]
    seconds: list[float] = []
    if with_ragas:
        config = _judge_config(judge_url or settings.llm_answer_urls[0], judge_model, mode, timeout, ("faithfulness",))
        ragas_verdicts, judged = asyncio.run(meta.faithfulness_verdicts(Judge(config).build(), rows))
        seconds = [j.seconds for j in judged]
        verdicts.append(replace(ragas_verdicts, name=f"ragas faithfulness ({config.model}, {mode})"))
    judges = {v.name: asdict(meta.agreement(v)) for v in verdicts}
    figures = {"judges": judges, "questions": len(rows), "seed": seed}
    with open_database(settings) as db, db.pool.connection() as conn:
        store.add_meta_eval(conn, f"HaluEval-QA ({len(rows)} questions, {2 * len(rows)} answers)", figures)
    out = table("judge", "balanced accuracy", "AUROC", "answers scored", "failures", title="meta-eval on HaluEval-QA")
    for name, f in judges.items():
        out.add_row(name, str(f["balanced_accuracy"]), str(f["auroc"]), str(f["items"]), str(f["failures"]))
    console.print(out)
    if seconds:
        console.print(f"ragas faithfulness seconds per answer: p50 {sorted(seconds)[len(seconds) // 2]:.1f}")
    print(json.dumps(figures))
