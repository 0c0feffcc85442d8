"""Builds the CI answer suite (``data/eval/ci-answers``): 30 items over a small corpus, so that the
regression gate runs in CI on two cores with the small model.

- 9 questions of the bundled samples (Markdown and text files, copied without their access sidecars so
  the eval tenant's group reads them), each with its short reference value;
- 12 SQuAD questions whose paragraph (from ``data/eval/squad-sample``) is in the corpus: the paragraph
  is the reference context;
- 9 SQuAD questions of paragraphs left out of the corpus: the answer is the abstention.

    python data/eval/make_ci_answers.py
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parents[1]
OUT = DATA / "eval" / "ci-answers"
SAMPLES = {
    "expense_policy_2025.md": [
        ("What is the general nightly hotel cap under the current travel policy?", "USD 220"),
        ("What is the mileage reimbursement rate for using a personal car on business?", "USD 0.70"),
        ("From what amount is an itemised receipt required for an expense?", "USD 75"),
    ],
    "it_support_contacts.txt": [("What is the internal phone extension of the IT help desk?", "4357")],
    "security_password_policy.txt": [("What is the minimum password length?", "14 characters")],
    "ridgeline_4_2_release_notes.txt": [("When will the Ridgeline v1 REST API be removed?", "30 June 2026")],
    "laptop_request_howto.md": [
        ("How long do I have to return my old laptop after receiving a replacement?", "14 days")
    ],
    "performance_review_process.md": [
        ("What share of an organisation may be rated 5 (Exceptional) in calibration?", "15%")
    ],
    "hr_case_handling_guidelines.txt": [("How long are HR case records kept?", "7 years")],
}


def _jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    squad = DATA / "eval" / "squad-sample"
    corpus = {d["_id"]: d for d in _jsonl(squad / "corpus.jsonl")}
    queries = {q["_id"]: q["text"] for q in _jsonl(squad / "queries.jsonl")}
    qrels = [line.split("\t")[:2] for line in (squad / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    first_question = {}
    for query, doc in qrels:
        first_question.setdefault(doc, query)
    rng = random.Random(22)
    docs = sorted(first_question)
    rng.shuffle(docs)
    inside, outside = docs[:12], docs[12:21]
    shutil.rmtree(OUT, ignore_errors=True)
    folder, texts = OUT / "ci-answers", OUT / "corpora" / "ci-answers"
    folder.mkdir(parents=True)
    texts.mkdir(parents=True)
    items = []
    for name, questions in SAMPLES.items():
        shutil.copy2(DATA / "samples" / name, texts / name)
        for n, (question, value) in enumerate(questions):
            items.append(
                {
                    "id": f"samples/{Path(name).stem}/{n}",
                    "question": question,
                    "reference_answer": value,
                    "tags": ["samples"],
                }
            )
    for doc in inside:
        (texts / f"squad-{doc}.md").write_text(f"# {corpus[doc]['title']}\n\n{corpus[doc]['text']}\n", encoding="utf-8")
        items.append(
            {
                "id": f"squad/{first_question[doc]}",
                "question": queries[first_question[doc]],
                "reference_contexts": [corpus[doc]["text"]],
                "tags": ["squad"],
            }
        )
    for doc in outside:
        items.append(
            {
                "id": f"abstain/{first_question[doc]}",
                "question": queries[first_question[doc]],
                "must_abstain": True,
                "tags": ["squad", "abstention"],
            }
        )
    meta = {
        "name": "ci-answers",
        "version": 1,
        "corpus": "ci-answers",
        "description": "CI suite: 9 sample questions, 12 SQuAD questions, 9 to abstain from",
    }
    (folder / "set.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (folder / "items.jsonl").write_text(
        "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8"
    )
    print(f"{len(items)} items, {len(list(texts.iterdir()))} documents in {OUT}")


if __name__ == "__main__":
    main()
