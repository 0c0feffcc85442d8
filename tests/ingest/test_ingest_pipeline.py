"""The ingestion pipeline against the real embedded PostgreSQL and the real MiniLM model."""

from __future__ import annotations

import random
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from ingest import store
from ingest.access import resolve_access
from ingest.batch import build_request, plan, remove_missing
from ingest.chunk import Chunker, ChunkSettings
from ingest.detect import Limits, sniff
from ingest.embed import SentenceTransformerEmbedder, WordTokenCounter
from ingest.parse import parse
from ingest.pipeline import IngestDeps, ingest_file
from ingest.types import IngestRequest, IngestResult
from retrieval.tokenize import Tokenizer
from sourcebook.db import Database, open_database
from sourcebook.errors import SourcebookError
from sourcebook.keys import ensure_tenant
from sourcebook.models import CPU_BATCH_SIZE, GPU_BATCH_SIZE, resolve_model
from tests.conftest import make_settings
from tests.ingest_helpers import SAMPLES, make_docx, make_pdf, make_zip_bomb_docx

pytestmark = [pytest.mark.db, pytest.mark.model]
TENANT = "acme"
FINGERPRINT = "test-fp"


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    model = SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2", offline=True), device="cpu")
    model.warm_up()
    return model


@pytest.fixture(scope="module")
def database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with open_database(make_settings(tmp_path_factory.mktemp("s"), database_url=database_url)) as db:
        with db.pool.connection() as conn:
            ensure_tenant(conn, TENANT)
        yield db


@pytest.fixture(scope="module")
def deps(database: Database, embedder: SentenceTransformerEmbedder) -> IngestDeps:
    chunker = Chunker(embedder.count_tokens, ChunkSettings(embedder.max_seq_length))
    return IngestDeps(
        database.pool,
        database.space,
        embedder,
        chunker,
        Limits(2 * 2**20, 16 * 2**20),
        "auto",
        FINGERPRINT,
        Tokenizer(),
    )


def _request(path: Path, groups: tuple[str, ...] = ("everyone",), **kw: object) -> IngestRequest:
    return IngestRequest(path, path.as_uri(), resolve_access(TENANT, groups, public=False, sidecar=None), **kw)  # type: ignore[arg-type]


def _ingest(deps: IngestDeps, request: IngestRequest) -> IngestResult:
    recorded: list[IngestResult] = []
    result = ingest_file(deps, request, lambda conn, r: recorded.append(r))
    assert recorded == [result]
    return result


def _chunks(db: Database, uri: str) -> list[tuple[str, list[str], int]]:
    with db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT c.text, c.acl_groups, d.version FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.source_uri = %s ORDER BY c.ordinal",
            (uri,),
        ).fetchall()
    return [(str(t), list(g), int(v)) for t, g, v in rows]  # type: ignore[call-overload]


def test_a_new_file_is_ingested_with_vectors_of_its_model(deps: IngestDeps, database: Database) -> None:
    result = _ingest(deps, _request(SAMPLES / "per_diem_rates_2025.pdf"))
    assert result.outcome == "ingested"
    assert result.chunks == result.embedded > 3
    assert set(result.timings_ms) >= {"hash", "parse", "chunk", "embed", "store"}
    with database.pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*), min(vector_dims(embedding)), bool_and(embedding_space_id = %s), "
            "bool_and(c.acl_groups = '{everyone}'), count(*) FILTER (WHERE kind = 'table') "
            "FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.source_uri = %s",
            (database.space.id, result.source_uri),
        ).fetchone()
    assert row == (result.chunks, 384, True, True, 2), "the 14-row table is split in two, header repeated"


def test_a_second_run_parses_and_embeds_nothing(deps: IngestDeps) -> None:
    path = SAMPLES / "vpn_setup.md"
    first = _ingest(deps, _request(path))
    again = _ingest(deps, _request(path))
    assert again.outcome == "unchanged"
    assert again.embedded == 0
    assert "parse" not in again.timings_ms
    assert again.document_id == first.document_id


def test_an_access_list_change_updates_chunks_without_embedding(deps: IngestDeps, database: Database) -> None:
    path = SAMPLES / "salary_bands_2025.docx"
    _ingest(deps, _request(path, ("everyone",)))
    changed = _ingest(deps, _request(path, ("hr",), title="Salary bands (HR only)"))
    assert changed.outcome == "acl_updated"
    assert changed.embedded == 0
    assert {tuple(g) for _, g, _ in _chunks(database, path.as_uri())} == {("hr",)}


def test_a_changed_file_replaces_its_chunks_and_reuses_unchanged_vectors(
    deps: IngestDeps, database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "policy.md"
    sections = [f"## Section {i}\n\nRule {i}: claims of type {i} are filed within {i + 10} days." for i in range(6)]
    path.write_text("# Policy\n\n" + "\n\n".join(sections))
    first = _ingest(deps, _request(path))
    path.write_text("# Policy\n\n" + "\n\n".join([*sections[:5], "## Section 5\n\nRule 5 was withdrawn."]))
    second = _ingest(deps, _request(path))
    assert second.outcome == "updated"
    assert second.chunks == first.chunks
    assert second.embedded == 1, "only the changed section is embedded again"
    rows = _chunks(database, path.as_uri())
    assert {v for _, _, v in rows} == {2}
    assert "withdrawn" in rows[-1][0]
    assert not any("within 15 days" in t for t, _, _ in rows)


def test_readers_see_one_version_or_the_other_never_a_mix(deps: IngestDeps, database: Database, tmp_path: Path) -> None:
    path = tmp_path / "versions.md"

    def write(tag: str) -> None:
        path.write_text("# Versions\n\n" + "\n\n".join(f"## Part {i}\n\nVersion {tag} part {i}." for i in range(8)))

    write("A")
    _ingest(deps, _request(path))
    stop = threading.Event()
    seen: list[set[str]] = []

    def read() -> None:
        with psycopg.connect(database.url, autocommit=True) as conn:
            while not stop.is_set():
                texts = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.source_uri = %s",
                        (path.as_uri(),),
                    ).fetchall()
                ]
                seen.append({t.split()[1] for t in texts})

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for tag in "BCDE":
            write(tag)
            assert _ingest(deps, _request(path)).outcome == "updated"
    finally:
        stop.set()
        reader.join()
    assert len(seen) > 10
    assert all(len(versions) == 1 for versions in seen), "a reader saw two versions at once (or none)"


def test_identical_files_with_the_same_access_are_stored_once(deps: IngestDeps, tmp_path: Path) -> None:
    original = tmp_path / "a" / "faq.html"
    original.parent.mkdir()
    shutil.copy(SAMPLES / "faq.html", original)
    copy = tmp_path / "b" / "faq-copy.html"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    assert _ingest(deps, _request(original)).outcome == "ingested"
    twin = _ingest(deps, _request(copy))
    assert twin.outcome == "duplicate"
    assert original.as_uri() in twin.detail
    assert _ingest(deps, _request(copy, ("hr",))).outcome == "ingested", "other readers: not a duplicate"


@pytest.mark.parametrize(
    ("name", "make", "fragment"),
    [
        ("zero.md", lambda p: p.write_bytes(b""), "0 bytes"),
        ("corrupt.pdf", lambda p: p.write_bytes(b"%PDF-1.7\n%garbage that is not a pdf"), "could not parse"),
        (
            "truncated.docx",
            lambda p: p.write_bytes((SAMPLES / "onboarding_handbook.docx").read_bytes()[:3000]),
            "corrupt or truncated",
        ),
        ("locked.pdf", lambda p: make_pdf(p, ["secret"], password="pw"), "password-protected"),
        ("bomb.docx", lambda p: make_zip_bomb_docx(p, inflated_mb=32), "ZIP bomb"),
        ("huge.txt", lambda p: p.write_bytes(b"word " * 600_000), "over the 2 MiB limit"),
        ("binary.dat", lambda p: p.write_bytes(bytes(range(256)) * 40), "unsupported file type"),
    ],
)
def test_bad_files_fail_alone_and_clearly(
    deps: IngestDeps, database: Database, tmp_path: Path, name: str, make: object, fragment: str
) -> None:
    path = tmp_path / name
    make(path)  # type: ignore[operator]
    with pytest.raises(SourcebookError, match=fragment):
        _ingest(deps, _request(path))
    assert _chunks(database, path.as_uri()) == []
    good = make_docx(tmp_path / "good.docx", [f"The kitchen is cleaned every Thursday ({name})."])
    assert _ingest(deps, _request(good)).outcome == "ingested"


def test_a_file_that_vanishes_before_its_job_runs(deps: IngestDeps, tmp_path: Path) -> None:
    path = tmp_path / "gone.txt"
    path.write_text("soon gone")
    request = _request(path)
    path.unlink()
    with pytest.raises(SourcebookError, match="disappeared"):
        _ingest(deps, request)


def test_plan_skips_unchanged_files_and_sync_removes_deleted_ones(
    deps: IngestDeps, database: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("faq.html", "it_support_contacts.txt", "it_support_contacts.txt.meta.json"):
        shutil.copy(SAMPLES / name, folder / name)
    (folder / "nogroups.md").write_text("# Orphan\n\nNobody said who may read this.")
    with database.pool.connection() as conn:
        first = {
            p.source_uri.rsplit("/", 1)[1]: p
            for p in plan(conn, [folder], tenant_id=TENANT, groups=[], public=False, fingerprint=FINGERPRINT)
        }
    assert first["nogroups.md"].action == "failed"
    assert "no access groups" in first["nogroups.md"].detail
    assert first["it_support_contacts.txt"].action == "queue"
    request = first["it_support_contacts.txt"].request
    assert request is not None
    assert request.access.groups == ("everyone",)
    assert request.title == "IT Support Contacts"
    assert first["faq.html"].action == "failed", "no sidecar, no --groups"
    _ingest(deps, request)
    with database.pool.connection() as conn:
        again = plan(conn, [folder], tenant_id=TENANT, groups=["everyone"], public=False, fingerprint=FINGERPRINT)
        actions = {p.source_uri.rsplit("/", 1)[1]: p.action for p in again}
        assert actions["it_support_contacts.txt"] == "unchanged"
        (folder / "it_support_contacts.txt").unlink()
        removed = remove_missing(
            conn,
            batch_id=uuid.uuid4(),
            tenant_id=TENANT,
            folders=[folder],
            seen={p.source_uri for p in again if Path(p.source_uri[7:]).exists()},
        )
    assert removed == [(folder / "it_support_contacts.txt").as_uri()]
    assert _chunks(database, removed[0]) == []


def test_a_mirrored_tenant_loses_the_documents_of_a_folder_it_no_longer_reads(
    deps: IngestDeps, database: Database, tmp_path: Path
) -> None:
    tenant = "mirror-test"
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        folder.mkdir()
        (folder / "contacts.txt").write_text(f"The help desk of the {folder.name} office answers on extension 4242.\n")
    with database.pool.connection() as conn:
        ensure_tenant(conn, tenant)
    with database.pool.connection() as conn:
        for folder in (old, new):
            for p in plan(conn, [folder], tenant_id=tenant, groups=["everyone"], public=False, fingerprint=FINGERPRINT):
                assert p.request is not None
                _ingest(deps, p.request)
        planned = plan(conn, [new], tenant_id=tenant, groups=["everyone"], public=False, fingerprint=FINGERPRINT)
        seen = {p.source_uri for p in planned}
        kept = remove_missing(conn, batch_id=uuid.uuid4(), tenant_id=tenant, folders=[new], seen=seen)
        assert kept == [], "--sync alone removes only what is gone from the folders read"
        removed = remove_missing(
            conn, batch_id=uuid.uuid4(), tenant_id=tenant, folders=[new], seen=seen, whole_tenant=True
        )
    assert removed == [(old / "contacts.txt").as_uri()]
    assert _chunks(database, removed[0]) == []
    assert _chunks(database, (new / "contacts.txt").as_uri()), "what the tenant mirrors stays"


def test_public_adds_everyone_and_sidecars_win(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_text("# Doc")
    assert build_request(path, tenant_id=TENANT, groups=["eng"], public=True).access.groups == ("eng", "everyone")
    (tmp_path / "doc.md.meta.json").write_text('{"groups": ["hr"], "url": "https://intra/doc", "metadata": {"k": 1}}')
    request = build_request(path, tenant_id=TENANT, groups=["eng"], public=False)
    assert request.access.groups == ("hr",)
    assert (request.url, dict(request.metadata)) == ("https://intra/doc", {"k": 1})
    (tmp_path / "doc.md.meta.json").write_text("{not json")
    with pytest.raises(SourcebookError, match="bad sidecar"):
        build_request(path, tenant_id=TENANT, groups=["eng"], public=False)


def test_results_are_recorded_per_batch(database: Database) -> None:
    batch = uuid.uuid4()
    with database.pool.connection() as conn:
        store.record_result(
            conn,
            batch_id=batch,
            job_id=None,
            tenant_id=TENANT,
            result=IngestResult("file:///x", "failed", "boom"),
            attempt=1,
            final=False,
        )
        store.record_result(
            conn,
            batch_id=batch,
            job_id=None,
            tenant_id=TENANT,
            result=IngestResult("file:///x", "ingested", chunks=3, embedded=3),
            attempt=2,
        )
        [latest] = store.batch_results(conn, batch_id=batch)
    assert (latest.outcome, latest.attempt, latest.chunks) == ("ingested", 2, 3)


def test_token_sorted_batches_give_the_models_own_vectors(embedder: SentenceTransformerEmbedder) -> None:
    """The embedder batches by token count, not as sentence-transformers would (by characters): same
    vectors, in the caller's order, whatever the lengths (past the model's limit too)."""
    rng = random.Random(7)
    words = [
        "ingest",
        "vector",
        "chunk",
        "PostgreSQL",
        "índice",
        "東京",
        "a",
        "of",
        "the",
        "policy",
        "refund",
        "(x)",
        "42",
    ]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 400))) for _ in range(37)]
    assert sorted(texts, key=len) != sorted(texts, key=lambda t: len(embedder.count_tokens(t)))
    expected = embedder.model.encode(texts, batch_size=embedder.batch_size, normalize_embeddings=True)
    got = embedder.embed(texts)
    assert got.dtype == np.float32
    assert got.shape == (37, 384)
    assert np.abs(got - expected).max() < 1e-5


def test_the_batch_size_is_chosen_for_the_device_unless_set(
    embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    assert make_settings(tmp_path).embed_batch_size == 0  # auto by default
    assert embedder.batch_size == CPU_BATCH_SIZE != GPU_BATCH_SIZE  # the fixture's: auto, on CPU
    location = resolve_model("all-MiniLM-L6-v2", offline=True)
    assert SentenceTransformerEmbedder(location, device="cpu", batch_size=5).batch_size == 5


def test_token_counts_are_the_hugging_face_tokenizers_own(embedder: SentenceTransformerEmbedder) -> None:
    """The chunker counts word by word (each distinct word tokenized once); the ids must be exactly the
    tokenizer's on whole texts: every sample document, and random text full of what could break the
    word split (control characters the tokenizer deletes, Unicode spaces, CJK, accents, emoji)."""
    wrapper = embedder.model.tokenizer
    assert WordTokenCounter(wrapper.backend_tokenizer).by_word  # MiniLM takes the word-by-word path

    def expected(text: str) -> list[int]:
        ids: list[int] = wrapper(text, add_special_tokens=False, truncation=False)["input_ids"]
        return ids

    parsed = [parse(p, sniff(p, Limits(2**24, 2**26))) for p in sorted(SAMPLES.iterdir()) if p.suffix != ".json"]
    texts = [e.text for doc in parsed for e in doc.elements]
    rng = random.Random(7)
    tricky = [chr(c) for c in [*range(0x250), *range(0x2000, 0x2070), 0x3000, 0x4E2D, 0xAC00, 0x1F600, 0xFFFD, 0xAD]]
    alphabet = tricky + list(" \n\tabcdefghij") * 20
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(3000)]
    texts.append(" ".join(texts[:200]))  # past the model's 256 tokens
    assert len(expected(texts[-1])) > embedder.max_seq_length
    assert [t for t in texts if embedder.count_tokens(t) != expected(t)] == []


def test_counting_tokens_while_the_model_encodes_in_another_thread_is_safe(
    embedder: SentenceTransformerEmbedder,
) -> None:
    """Hugging Face fast tokenizers are not thread-safe; chunking and embedding run in parallel jobs."""
    texts = [f"sentence {i} " * (5 + i % 40) for i in range(64)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def count() -> None:
        try:
            while not stop.is_set():
                for text in texts:
                    embedder.count_tokens(text)
        except BaseException as exc:
            errors.append(exc)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        for i in range(400):  # many small batches of unequal lengths: many windows for the race
            assert embedder.embed([texts[i % 64], texts[(i * 7 + 3) % 64]]).shape == (2, 384)
    finally:
        stop.set()
        counter.join()
    assert errors == []
