from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest

from sourcebook import keys
from sourcebook.errors import ErrorCode, SourcebookError
from tests.conftest import TEST_PEPPER

pytestmark = pytest.mark.db


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        keys.ensure_tenant(connection, "acme", "Acme Corp")
        yield connection


def _create(conn: psycopg.Connection[tuple[object, ...]], **overrides: object) -> keys.NewKey:
    args: dict[str, object] = {
        "tenant_id": "acme",
        "name": "alice",
        "scopes": ["ask"],
        "groups": ["everyone", "hr"],
        "pepper": TEST_PEPPER,
    }
    args.update(overrides)
    return keys.create_key(conn, **args)  # type: ignore[arg-type]


def test_a_created_key_verifies_to_its_tenant_groups_and_scopes(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    new = _create(conn, scopes=["ask", "ingest"])
    principal = keys.verify_key(conn, token=new.token, pepper=TEST_PEPPER)
    assert principal == keys.Principal(new.key.id, "acme", ("everyone", "hr"), frozenset({"ask", "ingest"}))
    principal.require("ingest")
    with pytest.raises(SourcebookError) as info:
        principal.require("admin")
    assert info.value.code is ErrorCode.FORBIDDEN


def test_only_a_keyed_hash_is_stored(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    new = _create(conn)
    row = conn.execute("SELECT * FROM api_keys WHERE id = %s", (new.key.id,)).fetchone()
    assert row is not None
    secret = new.token.removeprefix(f"sb_{new.key.id}_")
    assert len(secret) >= 40
    assert all(new.token not in str(value) and secret not in str(value) for value in row)
    stored = conn.execute("SELECT secret_hash FROM api_keys WHERE id = %s", (new.key.id,)).fetchone()
    assert stored is not None
    assert bytes(stored[0]) == keys.hash_token(new.token, TEST_PEPPER)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda t: "not-a-key", "malformed"),
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), "unknown"),
        (lambda t: "sb_000000000000_" + t.split("_", 2)[2], "unknown"),
        (lambda t: "", "malformed"),
    ],
)
def test_wrong_keys_are_unauthenticated(conn: psycopg.Connection[tuple[object, ...]], mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    new = _create(conn)
    with pytest.raises(SourcebookError, match=message) as info:
        keys.verify_key(conn, token=mangle(new.token), pepper=TEST_PEPPER)
    assert info.value.code is ErrorCode.UNAUTHENTICATED


def test_another_pepper_cannot_verify(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    new = _create(conn)
    with pytest.raises(SourcebookError, match="unknown"):
        keys.verify_key(conn, token=new.token, pepper="another-pepper-of-sufficient-length-000")


def test_revocation_takes_effect_at_once_and_is_idempotent(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    new = _create(conn)
    revoked = keys.revoke_key(conn, key_id=new.key.id)
    assert revoked.revoked_at is not None
    with pytest.raises(SourcebookError, match="revoked") as info:
        keys.verify_key(conn, token=new.token, pepper=TEST_PEPPER)
    assert info.value.code is ErrorCode.UNAUTHENTICATED
    assert keys.revoke_key(conn, key_id=new.key.id).revoked_at == revoked.revoked_at
    with pytest.raises(SourcebookError) as missing:
        keys.revoke_key(conn, key_id="0123456789ab")
    assert missing.value.code is ErrorCode.NOT_FOUND


def test_expired_keys_are_refused(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    new = _create(conn, expires_at=soon)
    keys.verify_key(conn, token=new.token, pepper=TEST_PEPPER)
    with pytest.raises(SourcebookError, match="expired"):
        keys.verify_key(conn, token=new.token, pepper=TEST_PEPPER, now=soon + dt.timedelta(seconds=1))


def test_verification_records_last_use(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    new = _create(conn)
    assert new.key.last_used_at is None
    keys.verify_key(conn, token=new.token, pepper=TEST_PEPPER)
    [listed] = [k for k in keys.list_keys(conn, tenant_id="acme") if k.id == new.key.id]
    assert listed.last_used_at is not None


def test_listing_filters_by_tenant_and_hides_revoked(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    keys.ensure_tenant(conn, "globex")
    mine = _create(conn, name="mine")
    other = _create(conn, tenant_id="globex", name="theirs")
    gone = _create(conn, name="gone")
    keys.revoke_key(conn, key_id=gone.key.id)
    acme_ids = {k.id for k in keys.list_keys(conn, tenant_id="acme")}
    assert mine.key.id in acme_ids
    assert other.key.id not in acme_ids
    assert gone.key.id not in acme_ids
    assert gone.key.id in {k.id for k in keys.list_keys(conn, tenant_id="acme", include_revoked=True)}
    assert {mine.key.id, other.key.id} <= {k.id for k in keys.list_keys(conn)}


@pytest.mark.parametrize(
    "overrides",
    [
        {"scopes": ["superuser"]},
        {"scopes": []},
        {"groups": ["ok", "has space"]},
        {"tenant_id": "Bad Tenant"},
    ],
)
def test_invalid_key_requests_are_refused(
    conn: psycopg.Connection[tuple[object, ...]], overrides: dict[str, object]
) -> None:
    with pytest.raises(SourcebookError) as info:
        _create(conn, **overrides)
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert info.value.hint


def test_a_key_for_an_unknown_tenant_is_not_found(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    with pytest.raises(SourcebookError) as info:
        _create(conn, tenant_id="nobody")
    assert info.value.code is ErrorCode.NOT_FOUND


def test_ensure_tenant_is_idempotent(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    assert keys.ensure_tenant(conn, "initech") is True
    assert keys.ensure_tenant(conn, "initech") is False


@pytest.mark.unit
def test_tokens_are_unique_and_well_formed() -> None:
    tokens = {keys.new_token()[1] for _ in range(200)}
    assert len(tokens) == 200
    assert all(keys._KEY_RE.fullmatch(t) for t in tokens)
