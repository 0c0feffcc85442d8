"""The sentence-transformers embedder: batched, normalised, on a GPU when there is one.

Construction is cheap; ``warm_up()`` loads the model once (sentence-transformers takes seconds to
import). On CPU torch uses every core.

A worker runs several jobs in threads so that parsing overlaps embedding; the model runs one call at a
time (two would fight over the same cores). Calls that arrive while it is busy are combined: the next
thread to get the model encodes everything waiting in one ``encode`` call, which sorts all texts by
length into batches (less padding than each document's texts alone) and hands each caller its rows.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import numpy.typing as npt

from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.models import ModelLocation, resolve_device

log = logging.getLogger(__name__)


class SentenceTransformerEmbedder:
    """``Embedder`` over a sentence-transformers model; also the chunker's token counter."""

    def __init__(
        self, location: ModelLocation, *, device: str = "auto", batch_size: int = 32, threads: int = 0
    ) -> None:
        self._location = location
        self._threads = threads or os.cpu_count() or 1
        self._device_setting = device
        self._batch_size = batch_size
        self._model: Any = None
        self._running = threading.Lock()  # held while the model encodes
        self._waiting_lock = threading.Lock()  # guards _waiting
        self._waiting: list[tuple[list[str], Future[npt.NDArray[np.float32]]]] = []
        self._counters = threading.local()  # a tokenizer per thread for count_tokens

    @property
    def model_name(self) -> str:
        return self._location.name

    def warm_up(self) -> None:
        if self._model is not None:
            return
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        device = resolve_device(self._device_setting)
        if device == "cpu":
            # All cores for ingestion. Query embedding asks for one: a short text needs no more, and with
            # several threads each step waits for the slowest, which a model server sharing the cores
            # makes ~40× slower (measured: 9 ms alone, 300-490 ms right after vLLM worked).
            torch.set_num_threads(self._threads)
        # Long inputs are only counted, never fed whole to the model: the warning is noise.
        logging.getLogger("transformers.tokenization_utils_base").setLevel(logging.ERROR)
        try:
            self._model = SentenceTransformer(self._location.load_arg, device=device)
        except (OSError, ValueError) as exc:
            raise SourcebookError(
                ErrorCode.MODEL_NOT_FOUND,
                f"cannot load embedding model {self.model_name}: {exc}",
                hint="check SOURCEBOOK_EMBEDDING_MODEL and run `sourcebook doctor`",
            ) from exc
        log.info("embedding model loaded", extra={"model": self.model_name, "device": device})

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
        """Token ids of ``text`` (no truncation), for sizing chunks.

        Hugging Face's fast tokenizers are not thread-safe: a call with other truncation or padding
        settings reconfigures the shared Rust tokenizer under a concurrent ``encode`` (measured: "expected
        sequence of length 207 (got 61)"). Each thread counts with its own copy; the model's stays the
        model's.
        """
        tokenizer = getattr(self._counters, "tokenizer", None)
        if tokenizer is None:
            tokenizer = self._counters.tokenizer = copy.deepcopy(self.model.tokenizer)
        ids: list[int] = tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
        return ids

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        mine: Future[npt.NDArray[np.float32]] = Future()
        with self._waiting_lock:
            self._waiting.append((list(texts), mine))
        with self._running:
            if not mine.done():  # nobody took ours while we waited: encode everything waiting
                with self._waiting_lock:
                    calls, self._waiting = self._waiting, []
                self._encode_calls(calls)
        return mine.result()

    def _encode_calls(self, calls: list[tuple[list[str], Future[npt.NDArray[np.float32]]]]) -> None:
        try:
            vectors = np.asarray(
                self.model.encode(
                    [text for texts, _ in calls for text in texts],
                    batch_size=self._batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ),
                dtype=np.float32,
            )
        except BaseException as exc:
            for _, future in calls:
                future.set_exception(exc)
            raise
        start = 0
        for texts, future in calls:
            future.set_result(vectors[start : start + len(texts)])
            start += len(texts)
