from __future__ import annotations

import pytest

from sourcebook.errors import ErrorCode, SourcebookError

pytestmark = pytest.mark.unit


def test_codes_are_unique_and_stable() -> None:
    slugs = [code.slug for code in ErrorCode]
    assert len(slugs) == len(set(slugs))
    assert ErrorCode.UNAUTHENTICATED.slug == "unauthenticated"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.INVALID_REQUEST, 400),
        (ErrorCode.UNAUTHENTICATED, 401),
        (ErrorCode.FORBIDDEN, 403),
        (ErrorCode.NOT_FOUND, 404),
        (ErrorCode.CONFLICT, 409),
        (ErrorCode.PAYLOAD_TOO_LARGE, 413),
        (ErrorCode.UNSUPPORTED_MEDIA_TYPE, 415),
        (ErrorCode.RATE_LIMITED, 429),
        (ErrorCode.DATABASE_ERROR, 500),
        (ErrorCode.DATABASE_UNAVAILABLE, 503),
        (ErrorCode.PGVECTOR_MISSING, 503),
        (ErrorCode.PGVECTOR_UNUSABLE, 503),
        (ErrorCode.MODEL_UNAVAILABLE, 503),
        (ErrorCode.TIMEOUT, 504),
        (ErrorCode.INTERNAL, 500),
    ],
)
def test_http_status_mapping(code: ErrorCode, status: int) -> None:
    assert SourcebookError(code, "x").http_status == status


def test_every_status_is_an_http_error() -> None:
    assert all(400 <= code.http_status < 600 for code in ErrorCode)


def test_envelope_is_openai_shaped() -> None:
    err = SourcebookError(ErrorCode.FORBIDDEN, "no scope", hint="ask an admin", details={"scope": "ingest"})
    assert err.envelope() == {
        "error": {
            "message": "no scope",
            "type": "forbidden",
            "code": "forbidden",
            "hint": "ask an admin",
            "details": {"scope": "ingest"},
        }
    }
    assert SourcebookError(ErrorCode.INTERNAL, "boom").envelope() == {
        "error": {"message": "boom", "type": "internal", "code": "internal"}
    }


def test_str_carries_the_fix() -> None:
    assert str(SourcebookError(ErrorCode.NOT_FOUND, "no key", hint="see keys list")) == "no key (fix: see keys list)"
    assert str(SourcebookError(ErrorCode.NOT_FOUND, "no key")) == "no key"


def test_details_are_read_only() -> None:
    err = SourcebookError(ErrorCode.CONFLICT, "x", details={"a": 1})
    with pytest.raises(TypeError):
        err.details["a"] = 2  # type: ignore[index]
