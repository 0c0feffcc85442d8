"""Who may read a document: tenant and groups from the CLI (or API), overridden per file by a sidecar.

A sidecar ``NAME.meta.json`` next to ``NAME`` may give ``groups``, ``public``, ``title``, ``url`` and
``metadata``. A document is visible to the tenant's ``everyone`` group only when the doc owner says
so (``--public``, or ``"public": true``); no groups and not public is an error, never a silent default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.types import AccessList
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import validate_groups, validate_tenant

EVERYONE = "everyone"
SIDECAR_SUFFIX = ".meta.json"


@dataclass(frozen=True, slots=True)
class Sidecar:
    groups: tuple[str, ...] | None = None
    public: bool = False
    title: str | None = None
    url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _invalid(path: Path, why: str) -> SourcebookError:
    return SourcebookError(
        ErrorCode.INVALID_REQUEST,
        f"bad sidecar {path.name}: {why}",
        hint='a sidecar is JSON like {"groups": ["hr"], "title": "...", "url": "...", "metadata": {}}',
    )


def read_sidecar(path: Path) -> Sidecar | None:
    """The file's sidecar, or None when it has none."""
    meta = sidecar_path(path)
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _invalid(meta, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _invalid(meta, "must be a JSON object")
    groups = data.get("groups")
    if groups is not None and (not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)):
        raise _invalid(meta, "groups must be a list of strings")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _invalid(meta, "metadata must be an object")
    title, url = data.get("title"), data.get("url")
    return Sidecar(
        groups=tuple(groups) if groups is not None else None,
        public=bool(data.get("public", False)),
        title=title if isinstance(title, str) and title.strip() else None,
        url=url if isinstance(url, str) and url.strip() else None,
        metadata=metadata,
    )


def resolve_access(tenant_id: str, groups: Sequence[str], *, public: bool, sidecar: Sidecar | None) -> AccessList:
    """The document's access list: the sidecar's groups win over the command's; public adds ``everyone``."""
    validate_tenant(tenant_id)
    chosen = sidecar.groups if sidecar is not None and sidecar.groups is not None else tuple(groups)
    is_public = public or (sidecar is not None and sidecar.public)
    resolved = set(validate_groups(chosen)) | ({EVERYONE} if is_public else set())
    if not resolved:
        raise SourcebookError(
            ErrorCode.INVALID_REQUEST,
            "no access groups: the document would be visible to nobody",
            hint='give --groups (or a sidecar with "groups"), or --public to show it to the whole tenant',
        )
    return AccessList(tenant_id, tuple(sorted(resolved)))


def discover(paths: Sequence[Path]) -> Iterator[Path]:
    """Files under the given paths (recursively), sidecars and hidden files excluded, in a stable order."""
    for root in paths:
        if not root.exists():
            raise SourcebookError(ErrorCode.NOT_FOUND, f"no such file or folder: {root}", hint="check the path")
        if root.is_file():
            yield root.resolve()
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and not name.endswith(SIDECAR_SUFFIX):
                    yield (Path(folder) / name).resolve()
