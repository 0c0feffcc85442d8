"""A batch: the files of one ``sourcebook ingest`` run, planned, queued and followed to the end.

Planning is cheap (hash each file, one query): unchanged files never become jobs, so a re-run on an
unchanged folder parses and embeds nothing. Per-file problems found while planning (bad sidecar, no
access groups, unreadable file) are recorded as failures of that file; the others go on.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ingest import store
from ingest.access import discover, read_sidecar, resolve_access
from ingest.pipeline import classify, file_sha256
from ingest.types import IngestRequest, IngestResult
from sourcebook.db import Conn
from sourcebook.errors import SourcebookError


@dataclass(frozen=True, slots=True)
class Planned:
    source_uri: str
    action: Literal["queue", "unchanged", "failed"]
    request: IngestRequest | None = None
    detail: str = ""


def build_request(path: Path, *, tenant_id: str, groups: Sequence[str], public: bool) -> IngestRequest:
    sidecar = read_sidecar(path)
    access = resolve_access(tenant_id, groups, public=public, sidecar=sidecar)
    if sidecar is None:
        return IngestRequest(path, path.as_uri(), access)
    return IngestRequest(path, path.as_uri(), access, sidecar.title, sidecar.url, sidecar.metadata)


def plan(
    conn: Conn, paths: Sequence[Path], *, tenant_id: str, groups: Sequence[str], public: bool, fingerprint: str
) -> list[Planned]:
    """Decide, per discovered file, whether it needs a job."""
    planned: list[Planned] = []
    candidates: list[tuple[IngestRequest, str]] = []
    for path in discover(paths):
        try:
            request = build_request(path, tenant_id=tenant_id, groups=groups, public=public)
            candidates.append((request, file_sha256(path)))
        except SourcebookError as exc:
            planned.append(Planned(path.as_uri(), "failed", detail=str(exc)))
    stored = store.find_documents(conn, tenant_id=tenant_id, uris=[r.source_uri for r, _ in candidates])
    for request, digest in candidates:
        change = classify(stored.get(request.source_uri), request, digest, fingerprint)
        planned.append(Planned(request.source_uri, "unchanged" if change == "unchanged" else "queue", request))
    return planned


def record_planned(conn: Conn, *, batch_id: uuid.UUID, tenant_id: str, planned: Sequence[Planned]) -> None:
    for item in planned:
        if item.action != "queue":
            outcome: Literal["unchanged", "failed"] = item.action
            store.record_result(
                conn,
                batch_id=batch_id,
                job_id=None,
                tenant_id=tenant_id,
                result=IngestResult(item.source_uri, outcome, item.detail),
            )


def remove_missing(
    conn: Conn,
    *,
    batch_id: uuid.UUID,
    tenant_id: str,
    folders: Sequence[Path],
    seen: set[str],
    whole_tenant: bool = False,
) -> list[str]:
    """``--sync``: delete the tenant's documents under these folders whose files are gone; with
    ``whole_tenant``, every document of the tenant that this batch did not see (a tenant that mirrors
    one folder, like an eval set's corpus that moved)."""
    removed = []
    prefixes = [""] if whole_tenant else [f.resolve().as_uri() + "/" for f in folders if f.is_dir()]
    for prefix in prefixes:
        for doc in store.documents_under(conn, tenant_id=tenant_id, prefix=prefix):
            if doc.source_uri in seen:
                continue
            with conn.transaction():
                store.delete_document(conn, document_id=doc.id)
                store.record_result(
                    conn,
                    batch_id=batch_id,
                    job_id=None,
                    tenant_id=tenant_id,
                    result=IngestResult(
                        doc.source_uri,
                        "removed",
                        "not in the folders this tenant mirrors" if whole_tenant else "file no longer exists",
                    ),
                )
            removed.append(doc.source_uri)
    return removed
