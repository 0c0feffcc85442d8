"""Routes for doc owners: upload documents (they become ingestion jobs), list, show and delete them,
and follow a job. Scope ``ingest``: such a key sees the tenant's documents that share one of its
groups; an ``admin`` key sees them all."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam

from ingest.documents import Reader, delete_document, get_document, get_job, list_documents
from serving import forms
from serving.deps import PrincipalDep, ServicesDep
from serving.forms import MAX_URI, read_form
from serving.pages import Document, DocumentDeleted, DocumentDetail, DocumentPage, Job, UploadReceipt
from serving.protocol import Text
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import Principal

router = APIRouter()
_UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One or more files (repeat the field).",
                        },
                        "groups": {"type": "string", "description": "Comma-separated access groups."},
                        "public": {"type": "boolean", "description": "Also visible to the tenant's everyone."},
                        "source_uri": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Each file's identity (default upload://<file name>); same order.",
                        },
                        "title": {"type": "string", "description": "Title (one file only)."},
                        "metadata": {"type": "string", "description": "A JSON object stored with each document."},
                    },
                }
            }
        },
    }
}


def _reader(principal: Principal) -> Reader:
    """Admins see all the tenant's documents; other ``ingest`` keys those sharing one of their groups."""
    if "admin" in principal.scopes:
        return Reader(principal.tenant_id, None)
    principal.require("ingest")
    return Reader(principal.tenant_id, principal.groups)


@router.post(
    "/v1/documents",
    status_code=202,
    openapi_extra=_UPLOAD_FORM,
    response_model_exclude_unset=True,
    responses={200: {"model": UploadReceipt, "description": "Nothing new: every file unchanged or already queued"}},
)
async def upload(request: Request, response: Response, services: ServicesDep, principal: PrincipalDep) -> UploadReceipt:
    """Upload files; each new or changed one becomes an ingestion job (follow it at /v1/jobs/{id})."""
    principal.require("ingest")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise SourcebookError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "uploads are multipart/form-data",
            hint="curl -F file=@handbook.pdf -F groups=staff …",
        )
    async with request.form(max_files=services.settings.upload_max_files, max_fields=100) as form:
        checked = read_form(form, principal)
        batch_id, entries = await forms.accept(
            services.uploads, checked, max_bytes=services.settings.upload_max_mb * 2**20
        )
    response.status_code = 202 if any(e["status"] == "queued" for e in entries) else 200
    return UploadReceipt.model_validate({"object": "list", "batch_id": batch_id, "data": entries})


@router.get("/v1/documents")
async def documents(
    services: ServicesDep,
    principal: PrincipalDep,
    status: Literal["pending", "ready", "failed"] | None = None,
    source_prefix: Annotated[Text | None, Query(max_length=MAX_URI)] = None,
    after: Annotated[Text | None, Query(max_length=MAX_URI)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DocumentPage:
    """The tenant's documents by source URI; pass ``next_after`` back as ``after`` for the next page."""
    reader = _reader(principal)

    def load() -> list[dict[str, Any]]:
        with services.pool.connection() as conn:
            return list_documents(conn, reader, status=status, source_prefix=source_prefix, after=after, limit=limit)

    rows = await anyio.to_thread.run_sync(load)
    return DocumentPage(
        data=[Document.model_validate(row) for row in rows],
        next_after=rows[-1]["source_uri"] if len(rows) == limit else None,
    )


@router.get("/v1/documents/{document_id}")
async def document(document_id: uuid.UUID, services: ServicesDep, principal: PrincipalDep) -> DocumentDetail:
    reader = _reader(principal)

    def load() -> dict[str, Any]:
        with services.pool.connection() as conn:
            return get_document(conn, reader, document_id)

    return DocumentDetail.model_validate(await anyio.to_thread.run_sync(load))


@router.delete("/v1/documents/{document_id}")
async def remove(document_id: uuid.UUID, services: ServicesDep, principal: PrincipalDep) -> DocumentDeleted:
    principal.require("ingest")
    reader = _reader(principal)

    def delete() -> str:
        with services.pool.connection() as conn:
            return delete_document(conn, reader, document_id)

    uri = await anyio.to_thread.run_sync(delete)
    return DocumentDeleted(id=document_id, source_uri=uri, deleted=True)


@router.get("/v1/jobs/{job_id}")
async def job(
    job_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)], services: ServicesDep, principal: PrincipalDep
) -> Job:
    reader = _reader(principal)

    def load() -> dict[str, Any]:
        with services.pool.connection() as conn:
            return get_job(conn, reader, job_id)

    return Job.model_validate(await anyio.to_thread.run_sync(load))
