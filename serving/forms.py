"""The upload form of ``POST /v1/documents``: read and checked against the caller's key, each file
received into a private temporary folder (hashed and size-checked on the way), then handed to the
upload service (``ingest.uploads``)."""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.datastructures import FormData, UploadFile

from ingest.access import resolve_access
from ingest.documents import UPLOAD_SCHEME, Reader, ReceivedFile, local_name, safe_filename
from ingest.uploads import UploadBatch, Uploads
from serving.protocol import utf8
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import Principal

_READ_BLOCK = 1 << 20
MAX_URI = 2000
MAX_METADATA_DEPTH = 16


@dataclass(frozen=True, slots=True)
class UploadForm:
    files: list[UploadFile]
    batch: UploadBatch


def read_form(form: FormData, principal: Principal) -> UploadForm:
    """The upload form, checked. Without the ``admin`` scope a ``source_uri`` must be an
    ``upload://`` one, so an upload can't replace a document ingested from a folder, and the access
    list may only hold the key's own groups (``public`` is the group ``everyone``: a key may publish
    when it belongs to it)."""
    admin = "admin" in principal.scopes
    tenant_id = principal.tenant_id
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "no file in the form", hint="send the field `file`")
    groups = [g.strip() for value in form.getlist("groups") if isinstance(value, str) for g in value.split(",")]
    public = str(form.get("public", "false")).strip().lower() in {"1", "true", "yes", "on"}
    access = resolve_access(tenant_id, [g for g in groups if g], public=public, sidecar=None)
    foreign = sorted(set(access.groups) - set(principal.groups))
    if foreign and not admin:
        raise SourcebookError(
            ErrorCode.FORBIDDEN,
            f"this API key may not assign the group(s) {', '.join(map(repr, foreign))}",
            hint="assign only groups the key belongs to (public needs the group everyone), or use an admin key",
        )
    given = [str(v).strip() for v in form.getlist("source_uri")]
    if given and len(given) != len(files):
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST, f"{len(given)} source_uri values for {len(files)} files: give one per file"
        )
    uris = given or [UPLOAD_SCHEME + safe_filename(f.filename) for f in files]
    for uri in uris:
        if not uri or len(uri) > MAX_URI or any(ord(ch) < 32 for ch in uri):
            raise SourcebookError(ErrorCode.INVALID_REQUEST, f"invalid source_uri {uri[:80]!r}")
        if not admin and not uri.startswith(UPLOAD_SCHEME):
            raise SourcebookError(
                ErrorCode.FORBIDDEN,
                f"source_uri {uri[:80]!r}: only admins may name a document outside {UPLOAD_SCHEME}",
                hint=f"use {UPLOAD_SCHEME}<name>, or a key with the admin scope",
            )
    if len(set(uris)) != len(uris):
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            "two files of the request would be the same document",
            hint="give each file its own name or source_uri",
        )
    title = form.get("title")
    if title is not None and "\x00" in str(title):
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "title must not contain NUL characters")
    if title is not None and len(files) > 1:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "title is for a single file; it was sent with several")
    titles = [None if title is None else str(title)] * len(files)
    manager = Reader(tenant_id, None if admin else principal.groups)
    return UploadForm(files, UploadBatch(access, uris, titles, _metadata(form), manager))


def _metadata(form: FormData) -> dict[str, Any]:
    raw = form.get("metadata")
    if raw is None or raw == "":
        return {}
    try:
        value = json.loads(str(raw), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            "metadata is not valid JSON",
            hint=f"a JSON object, nested at most {MAX_METADATA_DEPTH} deep, without NaN or Infinity",
        ) from exc
    if not isinstance(value, dict):
        raise SourcebookError(ErrorCode.INVALID_REQUEST, "metadata must be a JSON object")
    problem = _storable(value, MAX_METADATA_DEPTH)
    if problem:
        raise SourcebookError(ErrorCode.INVALID_REQUEST, f"metadata {problem}")
    return value


def _no_constant(name: str) -> float:
    # PostgreSQL's jsonb holds no NaN or Infinity, and JSON itself has none.
    raise ValueError(f"{name} is not JSON")


def _storable(value: Any, depth: int) -> str | None:
    """Why jsonb (and PostgreSQL text) would refuse the value, or None."""
    if depth < 0:
        return f"is nested more than {MAX_METADATA_DEPTH} deep"
    if isinstance(value, str):
        return "must not contain NUL characters" if "\x00" in value else _surrogate(value)
    if isinstance(value, dict):
        return next((p for k, v in value.items() for p in (_storable(k, depth), _storable(v, depth - 1)) if p), None)
    if isinstance(value, list):
        return next((p for v in value if (p := _storable(v, depth - 1))), None)
    return None


def _surrogate(text: str) -> str | None:
    try:
        utf8(text)
    except ValueError as exc:
        return str(exc)
    return None


async def receive(upload: UploadFile, folder: Path, max_bytes: int) -> ReceivedFile:
    """Copy one uploaded file to ``folder`` under a fixed name, hashing and size-checking it."""
    filename = safe_filename(upload.filename)
    path = folder / local_name(filename)
    digest = hashlib.sha256()
    size = 0
    async with await anyio.open_file(path, "wb") as out:
        while block := await upload.read(_READ_BLOCK):
            size += len(block)
            if size > max_bytes:
                raise SourcebookError(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"{filename}: over the upload limit of {max_bytes / 2**20:.0f} MiB",
                    hint="split the file, or raise SOURCEBOOK_UPLOAD_MAX_MB",
                )
            digest.update(block)
            await out.write(block)
    return ReceivedFile(filename, path, size, digest.hexdigest())


async def accept(uploads: Uploads, form: UploadForm, *, max_bytes: int) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """Receive the form's files, then plan, store and queue them; the batch id and each file's entry."""
    with tempfile.TemporaryDirectory(prefix="sourcebook-upload-") as tmp:
        received = []
        for i, file in enumerate(form.files):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            received.append(await receive(file, folder, max_bytes))
        return await uploads.accept(form.batch, received)
