"""One error type with stable codes, mapped to HTTP in exactly one place.

Every failure that leaves a Sourcebook function is a ``SourcebookError`` whose ``code`` is an
``ErrorCode``: a stable string (clients and logs key on it) and the HTTP status it maps to::

    SourcebookError(code=ErrorCode.X, message=...)
      ├── invalid_request        400   malformed input the caller can fix
      ├── config_invalid         500   settings that can't work (message names the setting)
      ├── unauthenticated        401   missing, unknown, expired or revoked API key
      ├── forbidden              403   valid key without the needed scope
      ├── not_found              404
      ├── conflict               409
      ├── payload_too_large      413
      ├── unsupported_media_type 415
      ├── rate_limited           429
      ├── database_unavailable   503   can't reach PostgreSQL
      ├── database_error         500   PostgreSQL answered with an error
      ├── pgvector_missing       503   pgvector absent or older than the minimum
      ├── pgvector_unusable      503   pgvector crashes on this CPU (the vector probe's backend died)
      ├── migration_failed       500
      ├── model_not_found        500   a model name/path that doesn't resolve locally
      ├── model_unavailable      503   a model server that doesn't answer
      ├── timeout                504
      └── internal               500

Foreign exceptions (psycopg, httpx, openai, ...) are caught only in adapters and re-raised as a
``SourcebookError`` with ``raise ... from exc``; each adapter has a test that pins its mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any


class ErrorCode(Enum):
    """A stable error code and the HTTP status it maps to."""

    INVALID_REQUEST = ("invalid_request", 400)
    CONFIG_INVALID = ("config_invalid", 500)
    UNAUTHENTICATED = ("unauthenticated", 401)
    FORBIDDEN = ("forbidden", 403)
    NOT_FOUND = ("not_found", 404)
    CONFLICT = ("conflict", 409)
    PAYLOAD_TOO_LARGE = ("payload_too_large", 413)
    UNSUPPORTED_MEDIA_TYPE = ("unsupported_media_type", 415)
    RATE_LIMITED = ("rate_limited", 429)
    DATABASE_UNAVAILABLE = ("database_unavailable", 503)
    DATABASE_ERROR = ("database_error", 500)
    PGVECTOR_MISSING = ("pgvector_missing", 503)
    PGVECTOR_UNUSABLE = ("pgvector_unusable", 503)
    MIGRATION_FAILED = ("migration_failed", 500)
    MODEL_NOT_FOUND = ("model_not_found", 500)
    MODEL_UNAVAILABLE = ("model_unavailable", 503)
    TIMEOUT = ("timeout", 504)
    INTERNAL = ("internal", 500)

    @property
    def slug(self) -> str:
        return self.value[0]

    @property
    def http_status(self) -> int:
        return self.value[1]


class SourcebookError(Exception):
    """The one exception type of Sourcebook; ``code`` says what kind of failure it is.

    ``message`` is safe to show to the caller (no secrets, no stack traces); ``hint`` says what to
    do about it, when there is something to do.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        hint: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.details: Mapping[str, Any] = MappingProxyType(dict(details or {}))

    @property
    def http_status(self) -> int:
        return self.code.http_status

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message

    def envelope(self) -> dict[str, Any]:
        """The OpenAI-shaped error body every API failure uses: ``{"error": {...}}``."""
        error: dict[str, Any] = {"message": self.message, "type": self.code.slug, "code": self.code.slug}
        if self.hint:
            error["hint"] = self.hint
        if self.details:
            error["details"] = dict(self.details)
        return {"error": error}
