"""The injection screen of ingestion (guardrails/screen.py): what it costs and what it flags. Prints JSON.

    python bench/screen.py                                        # the 27 sample documents
    python bench/screen.py data/samples /usr/share/doc/python3.11/html/faq \
        --classifier ~/.local/share/sourcebook/guards/injection.npz

A program with a report, not a timed test. Each folder is parsed and chunked as ingestion does it
(MiniLM's tokenizer, the default chunk sizes), then screened as ingestion screens a document: per
folder, the chunks flagged (false flags: these folders hold no injection), their flags, and the
screen's wall time per 1,000 chunks with the rules alone and with the classifier (parsing, chunking
and loading the classifier not counted). Then the held-out S-Labs injections (test split) each
appended to a chunk of those folders: the share flagged, the share flagged only by the classifier.
Without ``--classifier`` one is trained here first, as ``sourcebook guard train`` does (~10 s).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]  # bench/ingest.py is not the package
sys.path.insert(0, str(BENCH.parent))

from guardrails.classifier import InjectionClassifier, load_examples, train  # noqa: E402
from guardrails.screen import InjectionScreen  # noqa: E402
from ingest.chunk import Chunker, ChunkSettings  # noqa: E402
from ingest.detect import Limits, sniff  # noqa: E402
from ingest.parse import parse  # noqa: E402
from sourcebook.models import resolve_model  # noqa: E402
from sourcebook.settings import Settings  # noqa: E402

SAMPLES = BENCH.parent / "data" / "samples"


def chunker() -> Chunker:
    from tokenizers import Tokenizer

    location = resolve_model("sentence-transformers/all-MiniLM-L6-v2", offline=True)
    assert location.path is not None
    tokenizer = Tokenizer.from_file(str(location.path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return Chunker(
        lambda text: list(tokenizer.encode(text, add_special_tokens=False).ids),
        ChunkSettings(256, settings.chunk_tokens, settings.chunk_overlap_tokens),
    )


def chunk_folder(folder: Path, split: Chunker) -> list[str]:
    """The chunks of every document in ``folder`` (recursively), as ingestion embeds and shows them."""
    limits, texts = Limits(64 * 2**20, 256 * 2**20), []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".meta.json")):
        try:
            parsed = parse(path, sniff(path, limits), pdf_strategy="auto")
        except Exception as exc:  # a file ingestion would refuse: reported, not screened
            print(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        texts += [c.embed_text for c in split.chunk(parsed, parsed.title)]
    return texts


def per_1000(screen: InjectionScreen, texts: list[str]) -> float:
    started = time.perf_counter()
    screen.screen(texts)
    return round((time.perf_counter() - started) * 1000 / len(texts) * 1000, 1)


def corpus_figures(texts: list[str], rules: InjectionScreen, full: InjectionScreen) -> dict[str, Any]:
    marks = full.screen(texts)
    flagged = [m for m in marks if m.flagged]
    return {
        "chunks": len(texts),
        "flagged": len(flagged),
        "flagged_rate": round(len(flagged) / len(texts), 4),
        "flags": dict(collections.Counter(f for m in flagged for f in m.flags)),
        "ms_per_1000_chunks": {"rules_only": per_1000(rules, texts), "with_classifier": per_1000(full, texts)},
    }


def injected_figures(benign: list[str], screen: InjectionScreen, count: int) -> dict[str, Any]:
    attacks = [e.text for e in load_examples("test") if e.label == 1][:count]
    rng = random.Random(0)
    marks = screen.screen([f"{rng.choice(benign)}\n\n{attack}" for attack in attacks])
    flagged = [m for m in marks if m.flagged]
    return {
        "injections": len(attacks),
        "flagged_rate": round(len(flagged) / len(attacks), 4),
        "classifier_only_rate": round(sum(m.flags == ("classifier",) for m in flagged) / len(attacks), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path, default=[SAMPLES])
    parser.add_argument("--classifier", type=Path, help="a classifier `sourcebook guard train` wrote")
    parser.add_argument("--injections", type=int, default=400, help="S-Labs test injections to plant")
    args = parser.parse_args()
    if args.classifier:
        classifier = InjectionClassifier.load(args.classifier)
    else:
        classifier = train(load_examples("train"), load_examples("validation"))
    rules, full = InjectionScreen(), InjectionScreen(classifier)
    split = chunker()
    corpora = {str(folder): chunk_folder(folder, split) for folder in args.folders}
    full.screen(["warm up the vectorisers"])
    report = {
        "screen": full.name,
        "corpora": {name: corpus_figures(texts, rules, full) for name, texts in corpora.items()},
        "planted_s_labs_injections": injected_figures(
            [t for texts in corpora.values() for t in texts], full, args.injections
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
