"""One file through detect → parse → chunk → embed → store, as plain calls.

What is unchanged costs nothing: a file whose bytes (sha256) and ingestion fingerprint (parser and
chunker versions and settings, embedding model) match the stored version is not parsed or embedded;
only its access list, title or metadata are updated when those changed. Chunks whose text was already
embedded by the same model reuse the stored vector.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from psycopg_pool import ConnectionPool

from ingest import store
from ingest.chunk import Chunker, ChunkSettings
from ingest.detect import Limits, sniff
from ingest.gather import EmbedGather, Vectors
from ingest.marks import marks_for
from ingest.parse import PdfStrategy, parse
from ingest.types import AccessList, ChunkScreen, Element, IngestRequest, IngestResult, ParsedDocument
from retrieval.tokenize import Tokenizer
from retrieval.types import Embedder
from sourcebook.db import Conn
from sourcebook.db.spaces import EmbeddingSpace
from sourcebook.errors import ErrorCode, SourcebookError

# Bump when parsing or chunking changes what comes out, so stored documents are re-ingested.
INGEST_VERSION = 3
_HASH_BLOCK = 1 << 20

Recorder = Callable[[Conn, IngestResult], None]


@dataclass(frozen=True, slots=True)
class IngestDeps:
    """What ingesting needs, built once per worker."""

    pool: ConnectionPool[Conn]
    space: EmbeddingSpace
    embedder: Embedder
    chunker: Chunker
    limits: Limits
    pdf_strategy: PdfStrategy
    fingerprint: str
    tokenizer: Tokenizer
    concurrency: int = 1  # jobs that run at once
    # Marks each chunk for prompt injection; None stores chunks unscanned (`sourcebook guard scan` marks them).
    screen: ChunkScreen | None = None
    gather: EmbedGather = field(init=False, compare=False, repr=False)  # their embedding calls, made one
    # One file parsed at a time: parsing holds the GIL, so jobs parsing side by side take as long as one
    # after the other, but hold every document's parse trees at once; and unstructured's partitioners
    # are not documented as thread-safe.
    parsing: threading.Lock = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gather", EmbedGather(self.embedder.embed, size=self.concurrency))
        object.__setattr__(self, "parsing", threading.Lock())


def fingerprint(*, model: str, chunk: ChunkSettings, pdf_strategy: PdfStrategy, keywords: str) -> str:
    """Identifies how documents are turned into vectors; a change re-ingests them."""
    versions = {name: importlib.metadata.version(name) for name in ("unstructured", "pdfplumber", "llama-index-core")}
    spec = {
        "ingest": INGEST_VERSION,
        "model": model,
        "chunk": [chunk.max_seq_tokens, chunk.target_tokens, chunk.overlap_tokens],
        "pdf": pdf_strategy,
        "keywords": keywords,
        "versions": versions,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
                digest.update(block)
    except FileNotFoundError as exc:
        raise SourcebookError(
            ErrorCode.NOT_FOUND, "the file disappeared before it could be read", hint="check the path"
        ) from exc
    return digest.hexdigest()


def metadata_of(request: IngestRequest) -> dict[str, Any]:
    meta = dict(request.metadata)
    if request.url:
        meta["url"] = request.url
    return meta


class _Timer:
    """Each stage's wall time, and for the stages that run in the job's own thread its CPU time too
    (``parse_cpu``...): a worker runs jobs concurrently, so their wall times overlap."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.ms[name] = round(self.ms.get(name, 0.0) + seconds * 1000, 2)

    @contextmanager
    def stage(self, name: str, *, cpu: bool = False) -> Iterator[None]:
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)
            if cpu:
                self.add(f"{name}_cpu", time.thread_time() - start_cpu)


Change = Literal["unchanged", "meta", "content"]


def classify(stored: store.StoredDocument | None, request: IngestRequest, content_hash: str, fp: str) -> Change:
    """What a file needs: nothing, a metadata/ACL update, or a full parse and embed (pure)."""
    if stored is None or (stored.content_hash, stored.ingest_fingerprint) != (content_hash, fp):
        return "content"
    title = request.title or stored.title
    if (tuple(stored.acl_groups), stored.title, stored.metadata) == (
        request.access.groups,
        title,
        metadata_of(request),
    ):
        return "unchanged"
    return "meta"


def ingest_file(deps: IngestDeps, request: IngestRequest, record: Recorder) -> IngestResult:
    """Ingest one file; ``record`` stores the result in the same transaction as the document."""
    timer = _Timer()
    uri, tenant = request.source_uri, request.access.tenant_id
    groups = request.access.groups
    with timer.stage("hash"):
        content_hash = file_sha256(request.path)
    with deps.pool.connection() as conn:
        stored = store.find_documents(conn, tenant_id=tenant, uris=[uri]).get(uri)
        change = classify(stored, request, content_hash, deps.fingerprint)
        if stored is not None and change != "content":
            if change == "unchanged":
                result = IngestResult(uri, "unchanged", document_id=str(stored.id), chunks=stored.chunk_count)
            else:
                store.update_document_meta(
                    conn,
                    document_id=stored.id,
                    groups=groups,
                    title=request.title or stored.title,
                    metadata=metadata_of(request),
                )
                result = IngestResult(
                    uri, "acl_updated", "access list, title or metadata changed", str(stored.id), stored.chunk_count
                )
            record(conn, result)
            return result
        if stored is None:
            twin = store.find_duplicate(
                conn, tenant_id=tenant, content_hash=content_hash, source_uri=uri, groups=groups
            )
            if twin is not None:
                result = IngestResult(uri, "duplicate", f"same content and access as {twin}")
                record(conn, result)
                return result
    # From here on the job embeds: the others may wait for it until it has stored its document.
    with deps.gather.member() as member:
        with deps.parsing, timer.stage("parse", cpu=True):
            kind = sniff(request.path, deps.limits)
            parsed = parse(request.path, kind, pdf_strategy=deps.pdf_strategy)
        title = request.title or parsed.title
        with timer.stage("chunk", cpu=True):
            chunks = deps.chunker.chunk(parsed, title)
        vectors, embedded = _vectors(deps, tenant, [c.embed_text for c in chunks], member.embed)
        timer.add("embed", member.encode_s)
        timer.add("embed_wait", member.wait_s)
        doc = store.DocumentRecord(
            tenant,
            uri,
            title,
            parsed.mime_type,
            content_hash,
            request.path.stat().st_size,
            groups,
            deps.fingerprint,
            metadata_of(request),
        )
        with timer.stage("keywords", cpu=True):
            keywords = [deps.tokenizer.tsvector(c.embed_text) for c in chunks]
        with timer.stage("screen", cpu=True):
            marks = marks_for(deps.screen, chunks)
        with timer.stage("store"), deps.pool.connection() as conn, conn.transaction():
            document_id = store.write_document(
                conn, doc=doc, chunks=chunks, vectors=vectors, keywords=keywords, space=deps.space, marks=marks
            )
            result = IngestResult(
                uri,
                "updated" if stored else "ingested",
                f"{kind.upper()}, {len(parsed.elements)} elements",
                str(document_id),
                len(chunks),
                embedded,
                timer.ms,
            )
            record(conn, result)
        return result


def _vectors(
    deps: IngestDeps, tenant: str, texts: Sequence[str], embed: Callable[[Sequence[str]], Vectors]
) -> tuple[Vectors, int]:
    """A unit vector per text: the tenant's stored vector of the same text in this space when there
    is one (a re-ingested document re-embeds only what changed), else embedded, each distinct text
    once. Returns the vectors and how many texts were embedded."""
    hashes = [store.chunk_hash(t) for t in texts]
    with deps.pool.connection() as conn:
        known = store.vectors_by_hash(conn, tenant_id=tenant, space=deps.space, hashes=hashes)
    missing = sorted({h: i for i, h in enumerate(hashes) if h not in known}.values())
    fresh = embed([texts[i] for i in missing])
    found = {hashes[i]: fresh[row] for row, i in enumerate(missing)} | known
    vectors = np.zeros((len(texts), deps.space.dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        vectors[i] = found[h]
    return vectors, len(missing)


@dataclass(frozen=True, slots=True)
class TextDocument:
    """A document that arrives as text rather than a file (evaluation corpora, API uploads of text)."""

    source_uri: str
    title: str
    text: str
    access: AccessList
    metadata: dict[str, Any]

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(f"{self.title}\0{self.text}".encode()).hexdigest()


def ingest_texts(deps: IngestDeps, docs: list[TextDocument]) -> list[IngestResult]:
    """Ingest text documents as one batch: unchanged ones are skipped, the chunks of all the others are
    embedded in one call (length-sorted across documents), and each document is written in its own
    transaction, exactly as files are."""
    if not docs:
        return []
    tenants = {d.access.tenant_id for d in docs}
    if len(tenants) != 1:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "a batch of text documents must belong to one tenant")
    (tenant,) = tenants
    with deps.pool.connection() as conn:
        stored = store.find_documents(conn, tenant_id=tenant, uris=[d.source_uri for d in docs])
    results: list[IngestResult] = []
    todo = []
    for doc in docs:
        previous = stored.get(doc.source_uri)
        if (
            previous is not None
            and (previous.content_hash, previous.ingest_fingerprint) == (doc.content_hash, deps.fingerprint)
            and tuple(previous.acl_groups) == doc.access.groups
        ):
            results.append(IngestResult(doc.source_uri, "unchanged", document_id=str(previous.id)))
            continue
        parsed = ParsedDocument(doc.title, "text/plain", (Element("text", doc.text),))
        todo.append((doc, deps.chunker.chunk(parsed, doc.title), previous))
    vectors, _ = _vectors(deps, tenant, [c.embed_text for _, chunks, _ in todo for c in chunks], deps.embedder.embed)
    ends = itertools.accumulate(len(chunks) for _, chunks, _ in todo)
    for (doc, chunks, previous), end in zip(todo, ends, strict=True):
        record = store.DocumentRecord(
            tenant,
            doc.source_uri,
            doc.title,
            "text/plain",
            doc.content_hash,
            len(doc.text.encode()),
            doc.access.groups,
            deps.fingerprint,
            doc.metadata,
        )
        matrix = vectors[end - len(chunks) : end]
        with deps.pool.connection() as conn, conn.transaction():
            document_id = store.write_document(
                conn,
                doc=record,
                chunks=chunks,
                vectors=matrix,
                keywords=[deps.tokenizer.tsvector(c.embed_text) for c in chunks],
                space=deps.space,
                marks=marks_for(deps.screen, chunks),
            )
        outcome: Literal["ingested", "updated"] = "updated" if previous else "ingested"
        results.append(IngestResult(doc.source_uri, outcome, document_id=str(document_id), chunks=len(chunks)))
    if todo:
        store.refresh_statistics_after_writes(deps.pool)  # a batch is often a tenant's first: searches follow
    return results
