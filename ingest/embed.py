"""The sentence-transformers embedder: batched, normalised, on a GPU when there is one.

Construction is cheap; ``warm_up()`` loads the model once (sentence-transformers takes seconds to
import). On CPU torch uses every core.

The model runs one call at a time (two would fight over the same cores); a worker's concurrent jobs
hand their texts to one call through ``ingest.gather``.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from sourcebook.models import ModelLocation, auto_batch_size, load_model, resolve_device, resolve_model
from sourcebook.settings import Settings

log = logging.getLogger(__name__)

# Characters Python's str.split() splits on but a BERT tokenizer deletes (control characters), so the
# words on either side become one: texts with them are counted whole.
_JOINING_SPACE = re.compile("[\x0b\x0c\x1c-\x1f\x85]")
# Words; cleared when reached, which bounds the cache to tens of MB (bench/README.md, Ingestion).
_WORD_CACHE_LIMIT = 200_000


class WordTokenCounter:
    """Token ids of a text, as the model's tokenizer makes them (no special tokens, no truncation).

    The chunker asks for thousands of counts per document, of the body, its paragraphs, its sentences
    and the chunks (several times the document's text), and the Rust tokenizer is slow per character:
    the chunk stage was mostly tokenizing (bench/README.md, Ingestion). For WordPiece tokenizers
    behind a BERT normaliser and pre-tokeniser (MiniLM, BGE, E5, ...) a text's tokens are the
    concatenation of its whitespace-separated words' tokens: the normaliser works per character and
    the pre-tokeniser always splits at whitespace. So each distinct word is tokenized once and cached;
    a text is split on whitespace and its words' ids joined (a test checks the ids are identical to
    the tokenizer's on the sample documents and on random text). Other tokenizers (SentencePiece,
    byte-level BPE) encode the whole text every time.

    Hugging Face's fast tokenizers are not thread-safe: a call with other truncation or padding
    settings reconfigures the shared Rust object under a concurrent ``encode`` (measured: "expected
    sequence of length 207 (got 61)"). Each thread gets its own counter around its own copy, set once
    to no truncation and no padding; the model's tokenizer stays the model's.
    """

    def __init__(self, backend: Any, word_ids: dict[str, list[int]] | None = None) -> None:
        from tokenizers import models, normalizers, pre_tokenizers

        self._backend = copy.deepcopy(backend)
        self._backend.no_truncation()
        self._backend.no_padding()
        self._by_word = (
            isinstance(self._backend.model, models.WordPiece)
            and isinstance(self._backend.normalizer, normalizers.BertNormalizer | None)
            and isinstance(self._backend.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
        )
        self._word_ids = {} if word_ids is None else word_ids

    @property
    def by_word(self) -> bool:
        return self._by_word

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = self._backend.encode(text, add_special_tokens=False).ids
        return ids

    def __call__(self, text: str) -> list[int]:
        if not self._by_word or _JOINING_SPACE.search(text):
            return self._encode(text)
        cache = self._word_ids
        ids: list[int] = []
        for word in text.split():
            known = cache.get(word)
            if known is None:
                if len(cache) >= _WORD_CACHE_LIMIT:
                    cache.clear()
                known = cache[word] = self._encode(word)
            ids += known
        return ids


class SentenceTransformerEmbedder:
    """``Embedder`` over a sentence-transformers model; also the chunker's token counter."""

    def __init__(self, location: ModelLocation, *, device: str = "auto", batch_size: int = 0, threads: int = 0) -> None:
        self._location = location
        self._threads = threads or os.cpu_count() or 1
        self._device_setting = device
        self._batch_size = batch_size  # 0 until warm_up() resolves auto
        self._model: Any = None
        self._running = threading.Lock()  # held while the model encodes
        self._counters = threading.local()  # a WordTokenCounter per thread
        self._word_ids: dict[str, list[int]] = {}  # shared by the threads' counters

    @property
    def model_name(self) -> str:
        return self._location.name

    @property
    def batch_size(self) -> int:
        self.warm_up()
        return self._batch_size

    def warm_up(self) -> None:
        if self._model is not None:
            return
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        device = resolve_device(self._device_setting)
        self._batch_size = self._batch_size or auto_batch_size(device)
        if device == "cpu":
            # All cores for ingestion. Query embedding asks for one: a short text needs no more, and with
            # several threads each step waits for the slowest, which a model server sharing the cores
            # makes many times slower (bench/README.md, Answering).
            torch.set_num_threads(self._threads)
        # Long inputs are only counted, never fed whole to the model: the warning is noise.
        logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
        self._model = load_model(
            partial(SentenceTransformer, device=device),
            self._location,
            role="embedding model",
            hint="check SOURCEBOOK_EMBEDDING_MODEL and run `sourcebook doctor`",
        )
        log.info(
            "embedding model loaded",
            extra={"model": self.model_name, "device": device, "batch_size": self._batch_size},
        )

    @property
    def model(self) -> Any:
        self.warm_up()
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens, no truncation), for sizing chunks."""
        counter = getattr(self._counters, "counter", None)
        if counter is None:
            counter = self._counters.counter = WordTokenCounter(self.model.tokenizer.backend_tokenizer, self._word_ids)
        return counter(text)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Encode in batches of texts of (nearly) the same token count.

        sentence-transformers sorts by characters, and a batch is padded to its longest text in tokens:
        sorted by tokens, the model is fed almost no padding, and the same chunks encode faster into
        the same vectors (bench/README.md, Ingestion). Counting is the chunker's word-by-word count,
        almost free.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        limit = self.max_seq_length
        counts = [min(len(self.count_tokens(text)), limit) for text in texts]
        order = sorted(range(len(texts)), key=counts.__getitem__, reverse=True)
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        size = self.batch_size
        with self._running:  # two calls at once would fight over the same cores
            for start in range(0, len(order), size):
                rows = order[start : start + size]
                vectors[rows] = self.model.encode(
                    [texts[i] for i in rows],
                    batch_size=size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        return vectors


def query_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """The embedder of questions: the configured model, on ``query_embedding_threads`` threads (a
    short text needs no more, and a model server may share the cores). Not warmed up yet."""
    return SentenceTransformerEmbedder(
        resolve_model(settings.embedding_model, offline=settings.offline),
        device=settings.embedding_device,
        threads=settings.query_embedding_threads,
    )
