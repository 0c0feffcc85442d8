"""The policy repository on a real PostgreSQL: versions count up from 1 per tenant, never twice the
same under concurrent saves; the newest applies; version 0 is the default and never stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from guardrails.policies import load_policy, policy_versions, save_policy
from guardrails.policy import DeniedTopic, TenantPolicy
from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.keys import ensure_tenant

pytestmark = pytest.mark.db

TOPIC = {"name": "salaries", "keywords": ["salary"], "action": "block"}


@pytest.fixture
def conn(database_url: str) -> Iterator[Conn]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def test_a_tenant_without_a_stored_policy_runs_on_the_default(conn: Conn) -> None:
    ensure_tenant(conn, "plain")
    assert load_policy(conn, "plain") == TenantPolicy(tenant="plain", version=0)
    assert load_policy(conn, "plain", version=0) == TenantPolicy(tenant="plain")
    assert policy_versions(conn, "plain") == []


def test_each_save_is_the_next_version_and_the_newest_applies(conn: Conn) -> None:
    ensure_tenant(conn, "acme")
    first = save_policy(conn, tenant_id="acme", body={"pii": "block"}, api_key_id=None)
    second = save_policy(conn, tenant_id="acme", body={"denied_topics": [TOPIC]}, api_key_id="0123456789ab")
    assert (first.version, second.version) == (1, 2)
    assert first == TenantPolicy(tenant="acme", version=1, pii="block")
    # A whole policy each time: the second leaves pii out, so it is back to its default.
    assert load_policy(conn, "acme") == second
    assert second.pii == "redact"
    assert second.denied_topics == (DeniedTopic("salaries", ("salary",), (), "block"),)
    assert load_policy(conn, "acme", version=1) == first
    history = policy_versions(conn, "acme")
    assert [(v.version, v.created_by_key) for v in history] == [(2, "0123456789ab"), (1, None)]
    ensure_tenant(conn, "other")
    assert load_policy(conn, "other").version == 0


def test_an_invalid_policy_or_an_unknown_tenant_or_version_is_refused(conn: Conn) -> None:
    ensure_tenant(conn, "strict")
    with pytest.raises(SourcebookError) as invalid:
        save_policy(conn, tenant_id="strict", body={"review_below": 2}, api_key_id=None)
    assert invalid.value.code is ErrorCode.INVALID_REQUEST
    assert "review_below" in invalid.value.message
    with pytest.raises(SourcebookError) as nul:
        save_policy(conn, tenant_id="strict", body={"denied_topics": [{"name": "a\x00b", "keywords": ["x"]}]},
                    api_key_id=None)  # fmt: skip
    assert nul.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(SourcebookError) as tenant:
        save_policy(conn, tenant_id="nobody", body={}, api_key_id=None)
    assert tenant.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(SourcebookError) as version:
        load_policy(conn, "strict", version=7)
    assert version.value.code is ErrorCode.NOT_FOUND
    assert policy_versions(conn, "strict") == []


def test_a_stored_policy_this_code_no_longer_accepts_is_the_operators_to_fix(conn: Conn) -> None:
    ensure_tenant(conn, "legacy")
    conn.execute("INSERT INTO tenant_policies (tenant_id, version, policy) VALUES ('legacy', 1, '{\"old\": 1}')")
    with pytest.raises(SourcebookError) as stale:
        load_policy(conn, "legacy")
    assert stale.value.code is ErrorCode.CONFIG_INVALID
    assert "'old'" in stale.value.message


def test_a_save_waits_for_another_in_flight_and_takes_the_next_version(database_url: str, conn: Conn) -> None:
    ensure_tenant(conn, "race")
    done: list[int] = []
    with psycopg.connect(database_url) as first, first.transaction():
        assert save_policy(first, tenant_id="race", body={}, api_key_id=None).version == 1

        def second() -> None:
            with psycopg.connect(database_url) as other:
                done.append(save_policy(other, tenant_id="race", body={"pii": "allow"}, api_key_id=None).version)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the second save did not wait for the first"
    thread.join(timeout=30)
    assert done == [2]


def test_concurrent_saves_never_share_a_version(database_url: str, conn: Conn) -> None:
    ensure_tenant(conn, "busy")

    def saves(n: int) -> list[int]:
        with psycopg.connect(database_url) as own:
            versions = []
            for _ in range(3):
                with own.transaction():
                    versions.append(save_policy(own, tenant_id="busy", body={}, api_key_id=f"{n:012x}").version)
            return versions

    with ThreadPoolExecutor(6) as pool:
        got = [v for versions in pool.map(saves, range(6)) for v in versions]
    assert sorted(got) == list(range(1, 19))
    assert [v.version for v in policy_versions(conn, "busy")] == list(range(18, 0, -1))
