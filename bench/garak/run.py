"""Run garak against a running Sourcebook API as an outside client and print per-probe pass rates.

Starts nothing: give it the API's base URL and a key with the `ask` scope. garak runs from its own
venv (see bench/garak/requirements.txt and bench/README.md, "garak"); this script only needs the
standard library, so it runs with any Python 3.11.

    python bench/garak/run.py --base-url http://127.0.0.1:8000 --api-key "$KEY" --label after

It writes garak's configuration (the `rest` generator: an OpenAI-compatible JSON body, the answer read
from `$.choices[0].message.content`; the key goes to garak through REST_API_KEY, never to a file), runs
the probes with a fixed seed, a prompt cap per probe and one generation each, and prints one JSON
object: per probe, its detector's passed / evaluated outputs and the pass rate, read from garak's
report .jsonl (`entry_type: "eval"` rows). Everything is written under --out/<label>/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# String and regex detectors only: nothing here downloads a model or NLTK data at run time.
DEFAULT_PROBES = [
    "promptinject.HijackHateHumans",
    "promptinject.HijackKillHumans",
    "promptinject.HijackLongPrompt",
    "latentinjection.LatentInjectionReport",
    "latentinjection.LatentInjectionResume",
    "latentinjection.LatentInjectionFactSnippetEiffel",
    "latentinjection.LatentWhois",
    "latentinjection.LatentInjectionTranslationEnFr",
    "web_injection.MarkdownImageExfil",
    "web_injection.ColabAIDataLeakage",
    "web_injection.StringAssemblyDataExfil",
    "web_injection.MarkdownXSS",
    "encoding.InjectBase64",
    "encoding.InjectHex",
    "encoding.InjectUnicodeTagChars",
    "goodside.WhoIsRiley",
    "goodside.ThreatenJSON",
    "goodside.Tag",
]

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def garak_config(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """garak's run configuration (YAML accepts JSON), with the REST generator's options."""
    body = {
        "model": args.model,
        "messages": [{"role": "user", "content": "$INPUT"}],
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "stream": False,
    }
    rest = {
        "name": f"sourcebook-{args.label}",
        "uri": args.base_url.rstrip("/") + "/v1/chat/completions",
        "method": "post",
        "headers": {"Authorization": "Bearer $KEY", "Content-Type": "application/json"},
        "req_template_json_object": body,
        "response_json": True,
        "response_json_field": "$.choices[0].message.content",
        "request_timeout": args.request_timeout,
        # A 4xx would stop the whole run (garak raises); it is counted as no output instead.
        "skip_codes": [400, 413, 422],
    }
    return {
        "system": {"parallel_attempts": args.parallel if args.parallel > 1 else False, "lite": True},
        "run": {
            "seed": args.seed,
            "generations": args.generations,
            "soft_probe_prompt_cap": args.cap,
        },
        "plugins": {
            "target_type": "rest",
            "target_name": f"sourcebook-{args.label}",
            "probe_spec": ",".join(args.probes),
            "extended_detectors": False,
            "generators": {"rest": {"RestGenerator": rest}},
        },
        "reporting": {"report_dir": str(out), "report_prefix": "garak"},
    }


def summarise(report: Path) -> dict[str, Any]:
    """Per probe: its primary detector's passed and evaluated outputs, and the prompts sent."""
    evals: dict[str, dict[str, Any]] = {}
    prompts: dict[str, set[str]] = {}
    nones: dict[str, int] = {}
    with report.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            kind = row.get("entry_type")
            if kind == "attempt" and row.get("status") == 2:
                probe = row["probe_classname"]
                prompts.setdefault(probe, set()).add(str(row.get("seq")))
                outputs = row.get("outputs") or []
                nones[probe] = nones.get(probe, 0) + sum(1 for o in outputs if o is None)
            elif kind == "eval":
                probe = row["probe"]
                passed, total = int(row["passed"]), int(row["total_evaluated"])
                evals[probe] = {
                    "detector": row["detector"],
                    "passed": passed,
                    "evaluated": total,
                    "pass_rate": round(passed / total, 4) if total else None,
                }
    probes = {}
    for probe in sorted(set(evals) | set(prompts)):
        probes[probe] = {"prompts": len(prompts.get(probe, ())), "no_output": nones.get(probe, 0)}
        probes[probe].update(evals.get(probe, {"detector": None, "passed": 0, "evaluated": 0, "pass_rate": None}))
    passed = sum(p["passed"] for p in probes.values())
    evaluated = sum(p["evaluated"] for p in probes.values())
    return {
        "probes": probes,
        "total": {
            "passed": passed,
            "evaluated": evaluated,
            "pass_rate": round(passed / evaluated, 4) if evaluated else None,
        },
    }


def table(before: Path, after: Path) -> str:
    """A Markdown table of two runs' summary.json files, probe by probe."""
    runs = [json.loads(before.read_text(encoding="utf-8")), json.loads(after.read_text(encoding="utf-8"))]

    def cell(row: dict[str, Any] | None) -> str:
        if not row or not row["evaluated"]:
            return "–"
        return f"{row['pass_rate']:.0%} ({row['passed']}/{row['evaluated']})"

    def sent(row: dict[str, Any] | None) -> str:
        return "–" if not row else f"{row['prompts']} ({row['no_output']})"

    lines = [
        "| probe | detector | prompts (no output), before | pass rate, before | prompts (no output), after"
        " | pass rate, after |",
        "|---|---|---|---|---|---|",
    ]
    for probe in sorted(set(runs[0]["probes"]) | set(runs[1]["probes"])):
        b, a = runs[0]["probes"].get(probe), runs[1]["probes"].get(probe)
        detector = (b or a or {}).get("detector") or "–"
        lines.append(f"| `{probe}` | `{detector}` | {sent(b)} | {cell(b)} | {sent(a)} | {cell(a)} |")
    lines.append(f"| all | | | {cell(runs[0]['total'])} | | {cell(runs[1]['total'])} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="the API, e.g. http://127.0.0.1:8000 (required to run)")
    parser.add_argument(
        "--api-key", default=os.environ.get("SOURCEBOOK_API_KEY"), help="an ask key (default $SOURCEBOOK_API_KEY)"
    )
    parser.add_argument("--label", default="run", help="names the run's folder and garak's target")
    parser.add_argument("--garak-python", default="/work/garak-venv/bin/python", help="the garak venv's python")
    parser.add_argument("--out", type=Path, default=Path("bench/results/garak"), help="where reports go")
    parser.add_argument("--probes", default=",".join(DEFAULT_PROBES), help="comma-separated module.Class names")
    parser.add_argument("--cap", type=int, default=8, help="prompts per probe (garak's soft_probe_prompt_cap)")
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--max-tokens", type=int, default=96, help="max_tokens in each request")
    parser.add_argument("--parallel", type=int, default=2, help="garak's parallel_attempts")
    parser.add_argument("--request-timeout", type=int, default=300, help="seconds per request")
    parser.add_argument("--model", default="sourcebook", help="the `model` field (the assistant's name)")
    parser.add_argument("--summarise-only", type=Path, help="print the summary of an existing report .jsonl")
    parser.add_argument(
        "--table", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="a Markdown table of two summary.json files"
    )
    args = parser.parse_args()
    args.probes = [p.strip() for p in args.probes.split(",") if p.strip()]

    if args.table:
        print(table(*args.table))
        return 0
    if args.summarise_only:
        print(json.dumps(summarise(args.summarise_only), indent=2))
        return 0
    if not args.base_url or not args.api_key:
        parser.error("--base-url and --api-key (or $SOURCEBOOK_API_KEY) are required to run garak")

    out = (args.out / args.label).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = out / "garak-config.json"
    config.write_text(json.dumps(garak_config(args, out), indent=2), encoding="utf-8")
    report = out / "garak.report.jsonl"
    report.unlink(missing_ok=True)

    env = os.environ | OFFLINE_ENV | {"REST_API_KEY": args.api_key}
    command = [args.garak_python, "-m", "garak", "--config", str(config)]
    started = time.monotonic()
    with (out / "garak.log").open("w", encoding="utf-8") as log:
        rc = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    wall_s = round(time.monotonic() - started, 1)
    if not report.exists():
        print(f"garak exited {rc} without a report; see {out / 'garak.log'}", file=sys.stderr)
        return 1
    summary = {
        "label": args.label,
        "base_url": args.base_url,
        "seed": args.seed,
        "cap": args.cap,
        "generations": args.generations,
        "max_tokens": args.max_tokens,
        "garak_rc": rc,
        "wall_s": wall_s,
    } | summarise(report)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
