"""Guards benchmark: prints one JSON object (and writes it to bench/results/guards-<timestamp>.json).

    python bench/guards.py                                   # input figures, HaluEval, latency
    python bench/guards.py --calibrate                       # also refit stage 1's weights (printed)
    python bench/guards.py --judge-url http://127.0.0.1:8001/v1 --judge-model NAME --judge-items 60

A program with a report, not a timed test.

1. Input checks: the injection classifier trained here on S-Labs' train split (thresholds from its
   validation split), measured on its held-out test split: rules alone and all layers, recall and
   false-positive rate, warn and block separately; then the benign questions about security in
   data/guards/ (the share warned and blocked), the set written while the checks were built and the
   blind one written after.
2. Groundedness stage 1 on HaluEval-QA (10,000 questions; the knowledge is the passage): the even
   items calibrate (``--calibrate`` refits the weights there and picks the threshold for 5% false
   flags), the odd items are measured, with the weights and threshold in guardrails/groundedness.py
   unless ``--calibrate`` was given. ``drawn_floor_sweep``: what each floor of the drawn rule (the
   share of a sentence's words that must come from its passages) would catch and flag there.
   ``--eval-runs``: the same floors on real answers, the sentences of the answers that stored
   ``sourcebook eval answers`` runs scored correct, against the passages they cite (the share each
   floor would remove): HaluEval's right answers are spans of the passage, real answers paraphrase.
3. Groundedness stage 1 on SQuAD dev claims (``--squad-claims``, default 2,000): the paragraph
   sentence that holds a question's answer against the same sentence with that year, number, date or
   name swapped (``evals.counterfactual``), shown with two other paragraphs of the article; and the
   bare gold answer against the bare swapped value, with the question.
4. Latency per answer of every stage-1 check (the question: rules, classifier, secrets, PII; the
   answer: groundedness, instructions from passages, canary, secrets, PII) on RAG-shaped answers
   built from HaluEval (4 passages, 3 cited sentences); ``--similarity`` adds the MiniLM similarity.
5. ``--judge-url``: stage 2 (the model as a Yes/No judge) on a sample of the measured HaluEval items,
   on what stage 1 let through: hallucinated answers caught, right answers flagged, seconds per judged
   sentence. Off when no server answers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]  # bench/ingest.py is not the package
sys.path.insert(0, str(BENCH.parent))

from answer.prompts import ABSTAIN, load_template  # noqa: E402
from answer.types import Screened, Source  # noqa: E402
from evals.counterfactual import (  # noqa: E402
    Swap,
    kind_of,
    name_pool,
    occurs,
    replace_everywhere,
    swapped_value,
    wh_word,
)
from evals.datasets import fetch_halueval, fetch_squad  # noqa: E402
from guardrails.answering import AnswerGuardrails  # noqa: E402
from guardrails.canary import canary_instruction, check_canary, new_canary  # noqa: E402
from guardrails.classifier import InjectionClassifier, load_examples, train  # noqa: E402
from guardrails.figures import (  # noqa: E402
    caught_and_false,
    fit_weights,
    halueval_judged,
    injection_figures,
    question_sets,
    threshold_for,
)
from guardrails.groundedness import DRAWN_MIN_WORDS, SentenceEncoder, Stage1, claims  # noqa: E402
from guardrails.indirect import instruction_findings  # noqa: E402
from guardrails.injection import check_injection  # noqa: E402
from guardrails.judge import Judge, JudgeSettings  # noqa: E402
from guardrails.policy import TenantPolicy  # noqa: E402
from guardrails.sensitive import SensitiveScanner  # noqa: E402
from guardrails.sentences import split_sentences  # noqa: E402
from guardrails.types import Passage  # noqa: E402


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def input_section(classifier_path: Path | None) -> tuple[dict[str, Any], InjectionClassifier]:
    started = time.perf_counter()
    if classifier_path:
        classifier = InjectionClassifier.load(classifier_path)
    else:
        classifier = train(load_examples("train"), load_examples("validation"))
    trained_s = round(time.perf_counter() - started, 1)
    figures = injection_figures(classifier, load_examples("test"), question_sets())
    return {"train_seconds": trained_s, "held_out": "S-Labs test split (2,101 prompts)", **figures}, classifier


def halueval_section(items: Sequence[Mapping[str, str]], calibrate: bool) -> tuple[dict[str, Any], Stage1]:
    stage1 = Stage1()
    even, odd = range(0, len(items), 2), range(1, len(items), 2)
    out: dict[str, Any] = {"items": len(items)}
    if calibrate:
        fitted = fit_weights(halueval_judged(stage1, items, even))
        stage1 = Stage1(weights=fitted)
        stage1.threshold = threshold_for(halueval_judged(stage1, items, even), stage1, 0.05)
        out["fitted"] = {"weights": asdict(fitted), "threshold": stage1.threshold}
    out["weights"] = asdict(stage1.weights)
    out["threshold"] = stage1.threshold
    out["calibration_half"] = caught_and_false(halueval_judged(stage1, items, even))
    measured = halueval_judged(stage1, items, odd)
    out["measured_half"] = caught_and_false(measured)
    out["measured_half"]["hard_misses_only"] = caught_and_false(
        [type(j)(j.item, j.hallucinated, j.features, j.score, not stage1.supported(j.features, 1.0)) for j in measured]
    )
    # Each answer's flag from anything but the drawn rule, and whether it is long enough for the rule.
    base = [
        (
            j,
            not stage1.supported(replace(j.features, undrawn=()), j.score),
            _held_to_floor(stage1, items[j.item]["hallucinated_answer" if j.hallucinated else "right_answer"]),
        )
        for j in measured
    ]
    out["measured_half"]["drawn_floor_sweep"] = {
        f"{floor:.2f}": caught_and_false(
            [replace(j, flagged=other or (held and j.features.drawn < floor)) for j, other, held in base]
        )
        for floor in DRAWN_FLOORS
    }
    return out, stage1


# Floors of the drawn rule compared (the product's is guardrails.groundedness.DRAWN_FLOOR).
DRAWN_FLOORS = (0.5, 0.6, 2 / 3, 0.75, 0.8, 0.9, 1.0)


def _held_to_floor(stage1: Stage1, text: str) -> bool:
    """Whether the drawn rule applies to a sentence at all: enough distinct words."""
    return len(set(stage1.words(text))) >= DRAWN_MIN_WORDS


def real_answers_section(stage1: Stage1, runs: Sequence[int]) -> dict[str, Any]:
    """Each drawn floor on the claim sentences of the answers that eval runs ``runs`` scored correct
    (each distinct answer once; answers whose passages were since re-ingested are left out)."""
    from sourcebook.db import open_database
    from sourcebook.settings import load_settings

    # Each claim sentence's drawn share, when the rule applies to it.
    drawn: list[float] = []
    seen: set[tuple[str, str]] = set()
    used = sentences = 0
    with open_database(load_settings()) as db, db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT a.question, a.answer, a.retrieved FROM eval_results e JOIN answers a ON a.id = e.answer_id"
            " WHERE e.run_id = ANY(%s) AND e.result->>'result' = 'correct' ORDER BY e.run_id, e.item_id",
            (list(runs),),
        ).fetchall()
        for question, answer, retrieved in rows:
            if (question, answer) in seen:
                continue
            seen.add((question, answer))
            ids = [cid for p in retrieved for cid in p["chunk_ids"]]
            found = dict(conn.execute("SELECT id, text FROM chunks WHERE id = ANY(%s)", (ids,)).fetchall())
            texts = {p["number"]: "\n".join(found.get(cid, "") for cid in p["chunk_ids"]) for p in retrieved}
            if len(found) < len(set(ids)):
                continue
            used += 1
            shown = stage1.evidence(list(texts.values()), embed=False)
            for sentence in claims(split_sentences(answer)):
                cited = [texts[n] for n in sentence.cited if n in texts]
                facts = stage1.evidence(cited, embed=False) if cited else shown
                sentences += 1
                if _held_to_floor(stage1, sentence.text):
                    drawn.append(stage1.features(sentence.text, shown, question, facts).drawn)
    return {
        "runs": list(runs),
        "answers": used,
        "sentences": sentences,
        "removed_share": {
            f"{floor:.2f}": round(sum(d < floor for d in drawn) / max(sentences, 1), 4) for floor in DRAWN_FLOORS
        },
    }


def similarity_section(items: Sequence[Mapping[str, str]], encoder: SentenceEncoder, count: int) -> dict[str, Any]:
    """Lexical features alone against lexical + MiniLM similarity, each fitted on a sampled even half
    and measured on a sampled odd half at the threshold for 5% false flags."""
    rng = random.Random(5)
    even = rng.sample(range(0, len(items), 2), count)
    odd = rng.sample(range(1, len(items), 2), count)
    stage1 = Stage1(encoder=encoder)
    started = time.perf_counter()
    fit_on, measure_on = halueval_judged(stage1, items, even), halueval_judged(stage1, items, odd)
    out: dict[str, Any] = {"items_each_half": count, "seconds": round(time.perf_counter() - started, 1)}
    for name, with_similarity in (("lexical", False), ("lexical_and_similarity", True)):
        fitted = Stage1(weights=fit_weights(fit_on, similarity=with_similarity))
        fitted.threshold = threshold_for(fit_on, fitted, 0.05)
        rejudged = [type(j)(j.item, j.hallucinated, j.features, fitted.score(j.features), False) for j in measure_on]
        flagged = [
            type(j)(j.item, j.hallucinated, j.features, j.score, not fitted.supported(j.features, j.score))
            for j in rejudged
        ]
        out[name] = {"weights": asdict(fitted.weights), **caught_and_false(flagged)}
    return out


def squad_claims(squad: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """RAG-shaped claims from SQuAD dev: the paragraph sentence that holds a question's answer (a real
    answer as a sentence) and the same sentence with that year, number, date or name swapped for
    another of its kind (``evals.counterfactual``); shown with two other paragraphs of the article."""
    rng = random.Random(21)
    pairs = [
        (qa["question"], qa["answers"][0]["text"]) for a in squad["data"] for p in a["paragraphs"] for qa in p["qas"]
    ]
    names = name_pool(pairs)
    out = []
    for article in squad["data"]:
        contexts = [p["context"] for p in article["paragraphs"]]
        for index, paragraph in enumerate(article["paragraphs"]):
            others = contexts[:index] + contexts[index + 1 :]
            for qa in paragraph["qas"]:
                claim = _claim(paragraph["context"], qa, names, rng)
                if claim is not None:
                    claim["passages"] = [paragraph["context"], *rng.sample(others, min(2, len(others)))]
                    out.append(claim)
    return rng.sample(out, min(count, len(out)))


def _claim(
    context: str, qa: Mapping[str, Any], names: Mapping[str, list[str]], rng: random.Random
) -> dict[str, Any] | None:
    answer = qa["answers"][0]
    kind = kind_of(answer["text"])
    if kind is None:
        return None
    start = context.rfind(". ", 0, answer["answer_start"]) + 1
    end = context.find(". ", answer["answer_start"] + len(answer["text"]))
    sentence = context[start : end + 1 if end >= 0 else None].strip()
    swapped = swapped_value(kind, answer["text"], names.get(wh_word(qa["question"]), []), rng)
    if swapped is None or not occurs(answer["text"], sentence):
        return None
    fake = replace_everywhere({"s": sentence}, [Swap(answer["text"], swapped, kind)])["s"]
    return {
        "kind": kind,
        "question": qa["question"],
        "answer": answer["text"],
        "swapped": swapped,
        "real": sentence,
        "fake": fake,
    }


def squad_section(claims: Sequence[Mapping[str, Any]], stage1: Stage1) -> dict[str, Any]:
    """Stage 1 on each claim as a cited sentence, and as the bare answer to its question (the gold
    answer against the swapped value, as HaluEval's short answers are)."""
    flagged: dict[str, list[tuple[str, int, bool]]] = {"sentence": [], "answer_only": []}
    for claim in claims:
        passages = [Passage(n, text) for n, text in enumerate(claim["passages"], start=1)]
        for label, hallucinated in (("real", 0), ("fake", 1)):
            report = stage1.check(claim[label].rstrip(".") + " [1].", passages)
            flagged["sentence"].append((claim["kind"], hallucinated, not report.supported))
            bare = claim["answer"] if label == "real" else claim["swapped"]
            report = stage1.check(f"{bare} [1].", passages, claim["question"])
            flagged["answer_only"].append((claim["kind"], hallucinated, not report.supported))
    out: dict[str, Any] = {"claims": len(claims)}
    for form, rows in flagged.items():
        out[form] = {"swapped_caught": _rate(rows, 1), "real_flagged": _rate(rows, 0), "by_kind": {}}
        for kind in sorted({k for k, _, _ in rows}):
            of_kind = [r for r in rows if r[0] == kind]
            out[form]["by_kind"][kind] = {
                "claims": len(of_kind) // 2,
                "swapped_caught": _rate(of_kind, 1),
                "real_flagged": _rate(of_kind, 0),
            }
    return out


def _rate(rows: Sequence[tuple[str, int, bool]], hallucinated: int) -> float:
    flags = [f for _, h, f in rows if h == hallucinated]
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def rag_answers(items: Sequence[Mapping[str, str]], count: int) -> list[tuple[str, list[Passage], str]]:
    """(question, 4 passages, a 3-sentence cited answer) built from HaluEval items."""
    rng = random.Random(21)
    out = []
    for index in rng.sample(range(len(items)), count):
        item = items[index]
        others = [items[rng.randrange(len(items))]["knowledge"] for _ in range(3)]
        passages = [Passage(n, text) for n, text in enumerate([item["knowledge"], *others], start=1)]
        first = item["knowledge"].split(". ")[0].rstrip(".")
        answer = f"{first} [1]. {item['right_answer']} is the answer [1]. {item['hallucinated_answer']} [2]"
        out.append((item["question"], passages, answer))
    return out


def latency_section(
    answers: Sequence[tuple[str, list[Passage], str]], classifier: InjectionClassifier, encoder: SentenceEncoder | None
) -> dict[str, Any]:
    scanner = SensitiveScanner()
    scanner.warm_up()
    stages: dict[str, Callable[[str, list[Passage], str, str], object]] = {
        "question_injection": lambda q, p, a, c: check_injection(q, classifier),
        "question_secrets_pii": lambda q, p, a, c: scanner.scan(q),
        "answer_groundedness": lambda q, p, a, c: Stage1().check(a, p, q),
        "answer_indirect_injection": lambda q, p, a, c: instruction_findings(a, p),
        "answer_canary": lambda q, p, a, c: check_canary(a, c),
        "answer_secrets_pii": lambda q, p, a, c: scanner.scan(a),
    }
    if encoder is not None:
        with_similarity = Stage1(encoder=encoder)
        stages["answer_groundedness_minilm"] = lambda q, p, a, c: with_similarity.check(a, p, q)
    timings: dict[str, list[float]] = {name: [] for name in stages}
    totals: list[float] = []
    for question, passages, answer in answers[:3]:  # warm-up: first calls load plugins and caches
        for run in stages.values():
            run(question, passages, answer, new_canary())
    for question, passages, answer in answers:
        token = new_canary()
        assert token in canary_instruction(token)
        total = 0.0
        for name, run in stages.items():
            started = time.perf_counter()
            run(question, passages, answer, token)
            elapsed = (time.perf_counter() - started) * 1000
            timings[name].append(elapsed)
            total += elapsed if name != "answer_groundedness_minilm" else 0.0
        totals.append(total)
    out: dict[str, Any] = {"answers": len(answers), "unit": "ms per answer"}
    out["stage1_total"] = {"p50": pct(totals, 0.5), "p95": pct(totals, 0.95)}
    out["per_check"] = {name: {"p50": pct(v, 0.5), "p95": pct(v, 0.95)} for name, v in timings.items()}
    return out


async def _through_the_gate(
    guards: AnswerGuardrails, question: str, passages: Sequence[Passage], answer: str, prompt: str
) -> Screened:
    screened = guards.screen("bench", question, ())
    sources = [
        Source(p.number, p.number, (p.number,), uuid.UUID(int=p.number), f"doc {p.number}", "", None, p.text, 1.0)
        for p in passages
    ]
    gate = guards.gate("bench", screened, sources, prompt=prompt)
    words = answer.split(" ")
    for start in range(0, len(words), 3):  # about a streamed token's worth of text per piece
        await gate.feed(" ".join(words[start : start + 3]) + " ")
    await gate.close()
    return screened


def wired_section(answers: Sequence[tuple[str, list[Passage], str]], classifier: InjectionClassifier) -> dict[str, Any]:
    """Every check as the answer stage runs it: the question screened, the answer streamed through
    its sentence gate in three-word pieces (the default policy, given as a value: reading the stored
    one is one indexed query per answer)."""
    scanner = SensitiveScanner()
    scanner.warm_up()
    guards = AnswerGuardrails(
        policy=lambda tenant: TenantPolicy(tenant=tenant), scanner=scanner, stage1=Stage1(), scorer=classifier
    )
    template = load_template("answer", "v7")
    prompt = template.system.render(assistant="Sourcebook", abstain=ABSTAIN)
    for question, passages, answer in answers[:3]:
        asyncio.run(_through_the_gate(guards, question, passages, answer, prompt))
    totals = []
    for question, passages, answer in answers:
        started = time.perf_counter()
        asyncio.run(_through_the_gate(guards, question, passages, answer, prompt))
        totals.append((time.perf_counter() - started) * 1000)
    return {"answers": len(answers), "unit": "ms per answer", "p50": pct(totals, 0.5), "p95": pct(totals, 0.95)}


async def judge_section(
    items: Sequence[Mapping[str, str]], stage1: Stage1, settings: JudgeSettings, count: int
) -> dict[str, Any]:
    judge = Judge(settings)
    sample = random.Random(7).sample(range(1, len(items), 2), count)
    judged = halueval_judged(stage1, items, sample)
    flagged: list[tuple[int, bool]] = []
    seconds: list[float] = []
    scores: list[tuple[int, float]] = []
    for j in judged:
        item = items[j.item]
        if j.flagged:
            flagged.append((j.hallucinated, True))
            continue
        answer = item["hallucinated_answer"] if j.hallucinated else item["right_answer"]
        started = time.perf_counter()
        # A HaluEval answer answers the question; stated as a claim, it is what the judge is asked about.
        p_yes = await judge.score(item["knowledge"], f"The answer is: {answer}", item["question"])
        seconds.append(time.perf_counter() - started)
        if p_yes is None:
            await judge.close()
            return {"judge": "off: no model server answered", "url": settings.base_url}
        scores.append((j.hallucinated, p_yes))
        flagged.append((j.hallucinated, p_yes < 0.5))
    await judge.close()
    return {
        "model": settings.model,
        "api": settings.api,
        "items": count,
        "stage1_alone": caught_and_false(judged),
        "stage1_then_judge_at_0.5": {
            "hallucinated_caught": round(sum(f for h, f in flagged if h) / max(1, sum(h for h, _ in flagged)), 4),
            "right_flagged": round(sum(f for h, f in flagged if not h) / max(1, sum(1 - h for h, _ in flagged)), 4),
        },
        "judged_sentences": len(seconds),
        "seconds_per_judged_sentence": {"p50": pct(seconds, 0.5), "p95": pct(seconds, 0.95)} if seconds else None,
        "judge_auroc_on_what_stage1_passed": _auroc(scores),
    }


def _auroc(scores: Sequence[tuple[int, float]]) -> float | None:
    """P(a right answer scores above a hallucinated one) on P(Yes); ties count half."""
    right = [s for h, s in scores if not h]
    wrong = [s for h, s in scores if h]
    if not right or not wrong:
        return None
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return round(wins / (len(right) * len(wrong)), 4)


def _encoder() -> SentenceEncoder:
    from ingest.embed import SentenceTransformerEmbedder
    from sourcebook.models import resolve_model
    from sourcebook.settings import load_settings

    settings = load_settings()
    return SentenceTransformerEmbedder(resolve_model(settings.embedding_model, offline=True), device="cpu", threads=1)


def main() -> None:
    parser = argparse.ArgumentParser(description="Guards benchmark (prints JSON).")
    parser.add_argument("--cache", type=Path, default=BENCH / ".cache" / "eval-sources")
    parser.add_argument("--classifier", type=Path, default=None, help="a trained model (default: train one now)")
    parser.add_argument("--calibrate", action="store_true", help="refit stage 1 on HaluEval's calibration half")
    parser.add_argument("--latency-answers", type=int, default=300)
    parser.add_argument("--similarity", action="store_true", help="also measure and time the MiniLM similarity")
    parser.add_argument("--similarity-items", type=int, default=300, help="HaluEval items per half for it")
    parser.add_argument("--judge-url", default=None, help="an OpenAI-compatible server (vLLM) for stage 2")
    parser.add_argument("--judge-model", default=None)
    parser.add_argument("--judge-items", type=int, default=60)
    parser.add_argument("--judge-api", choices=["completions", "chat"], default="completions")
    parser.add_argument("--squad-claims", type=int, default=2000, help="SQuAD dev claims (real and swapped)")
    parser.add_argument(
        "--eval-runs", default="", help="stored eval runs whose correct answers the floors are tried on"
    )
    parser.add_argument("--skip", default="", help="sections to leave out: input, latency, squad (comma-separated)")
    args = parser.parse_args()
    started = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {"benchmark": "guards", "started": started.isoformat(timespec="seconds")}
    skip = set(args.skip.split(",")) if args.skip else set()
    if "input" not in skip or "latency" not in skip:
        log("input checks")
        report["input"], classifier = input_section(args.classifier)
    items = fetch_halueval(args.cache)
    log(f"groundedness on HaluEval-QA ({len(items)} items)")
    report["groundedness_halueval"], stage1 = halueval_section(items, args.calibrate)
    if args.eval_runs:
        log("drawn floors on real answers")
        runs = [int(r) for r in args.eval_runs.split(",")]
        report["groundedness_halueval"]["real_answers"] = real_answers_section(stage1, runs)
    if "squad" not in skip:
        log("groundedness on SQuAD dev claims")
        claims = squad_claims(fetch_squad(args.cache), args.squad_claims)
        report["groundedness_squad_swaps"] = squad_section(claims, stage1)
    encoder = _encoder() if args.similarity else None
    if encoder is not None:
        log("MiniLM similarity on a HaluEval sample")
        report["groundedness_halueval"]["similarity"] = similarity_section(items, encoder, args.similarity_items)
    if "latency" not in skip:
        log("latency")
        answers = rag_answers(items, args.latency_answers)
        report["latency"] = latency_section(answers, classifier, encoder)
        log("latency as wired: screen and sentence gate")
        report["latency"]["wired"] = wired_section(answers, classifier)
    if args.judge_url:
        log("stage 2 judge")
        settings = JudgeSettings(args.judge_url, args.judge_model or "default", api=args.judge_api)
        report["stage2_judge"] = asyncio.run(judge_section(items, stage1, settings, args.judge_items))
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    text = json.dumps(report, indent=2)
    (out_dir / f"guards-{started:%Y%m%dT%H%M%S}.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
