"""Per-key rate limits (requests and tokens per window) with the `limits` library, its state in
PostgreSQL so that every API process shares it.

``PostgresStorage`` is a `limits` storage backend (an unlogged table, one row per window counter)
that supports the sliding-window-counter strategy. Each acquisition runs in one transaction under
an advisory lock on the key, so two processes never both take the last unit of a window.

Requests are counted when they arrive; tokens (prompt + completion) are known only after the
answer, so a request is refused once its key's token window is spent, and each answer's tokens are
added to the window when it is done, whatever their number.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import psycopg
from limits import RateLimitItem, parse_many
from limits.storage import Storage
from limits.storage.base import SlidingWindowCounterSupport, TimestampedSlidingWindow
from limits.strategies import SlidingWindowCounterRateLimiter
from psycopg_pool import ConnectionPool

from sourcebook.db import Conn
from sourcebook.errors import ErrorCode, SourcebookError
from sourcebook.settings import Settings

Kind = Literal["requests", "tokens"]
# One acquisition in this many also deletes long-expired counters.
_SWEEP_ONE_IN = 200


class PostgresStorage(Storage, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """A `limits` storage on a PostgreSQL table (``rate_limit_counters``), shared across processes."""

    STORAGE_SCHEME = None

    def __init__(self, pool: ConnectionPool[Conn]) -> None:
        super().__init__()
        self._pool = pool

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return psycopg.Error

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        with self._pool.connection() as conn:
            return _incr(conn, key, expiry, amount, time.time())

    def get(self, key: str) -> int:
        with self._pool.connection() as conn:
            return _count(conn, key, time.time())

    def get_expiry(self, key: str) -> float:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT expires_at FROM rate_limit_counters WHERE key = %s", (key,)).fetchone()
        now = time.time()
        return float(str(row[0])) if row and float(str(row[0])) > now else now

    def check(self) -> bool:
        try:
            with self._pool.connection() as conn:
                conn.execute("SELECT 1 FROM rate_limit_counters LIMIT 1")
        except psycopg.Error:
            return False
        return True

    def reset(self) -> int | None:
        with self._pool.connection() as conn:
            return conn.execute("DELETE FROM rate_limit_counters").rowcount

    def clear(self, key: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM rate_limit_counters WHERE key = %s", (key,))

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            previous, previous_ttl, current, _ = _window(conn, previous_key, current_key, expiry, now)
            if math.floor(previous * previous_ttl / expiry + current) + amount > limit:
                return False
            _incr(conn, current_key, 2 * expiry, amount, now)
            if random.randrange(_SWEEP_ONE_IN) == 0:  # noqa: S311 - sampling, not security
                conn.execute("DELETE FROM rate_limit_counters WHERE expires_at < %s", (now,))
        return True

    def add_sliding_window_entry(self, key: str, expiry: int, amount: int) -> None:
        """Count ``amount`` in the current window without checking the limit (spent tokens)."""
        now = time.time()
        _, current_key = self.sliding_window_keys(key, expiry, now)
        with self._pool.connection() as conn:
            _incr(conn, current_key, 2 * expiry, amount, now)

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        now = time.time()
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        with self._pool.connection() as conn:
            return _window(conn, previous_key, current_key, expiry, now)

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        previous_key, current_key = self.sliding_window_keys(key, expiry, time.time())
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM rate_limit_counters WHERE key = ANY(%s)", ([previous_key, current_key],))


def _incr(conn: Conn, key: str, expiry: float, amount: int, now: float) -> int:
    row = conn.execute(
        "INSERT INTO rate_limit_counters AS c (key, count, expires_at) VALUES (%(key)s, %(amount)s, %(until)s) "
        "ON CONFLICT (key) DO UPDATE SET "
        "  count = CASE WHEN c.expires_at <= %(now)s THEN %(amount)s ELSE c.count + %(amount)s END, "
        "  expires_at = CASE WHEN c.expires_at <= %(now)s THEN %(until)s ELSE c.expires_at END "
        "RETURNING count",
        {"key": key, "amount": amount, "until": now + expiry, "now": now},
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def _count(conn: Conn, key: str, now: float) -> int:
    row = conn.execute(
        "SELECT count FROM rate_limit_counters WHERE key = %s AND expires_at > %s", (key, now)
    ).fetchone()
    return int(str(row[0])) if row else 0


def _window(conn: Conn, previous_key: str, current_key: str, expiry: int, now: float) -> tuple[int, float, int, float]:
    # Both windows in one round trip; the same arithmetic as the library's own storages (limits.storage.memory).
    rows = conn.execute(
        "SELECT key, count FROM rate_limit_counters WHERE key = ANY(%s) AND expires_at > %s",
        ([previous_key, current_key], now),
    ).fetchall()
    counts = {str(key): int(str(count)) for key, count in rows}
    previous = counts.get(previous_key, 0)
    current = counts.get(current_key, 0)
    previous_ttl = 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
    current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
    return previous, previous_ttl, current, current_ttl


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    kind: Kind | None = None
    limit: str = ""
    retry_after_s: int = 0


class RateLimiter:
    """The limits of ``settings`` (per tenant when overridden) applied to API keys."""

    def __init__(self, settings: Settings, storage: PostgresStorage) -> None:
        self._settings = settings
        self._storage = storage
        self._strategy = SlidingWindowCounterRateLimiter(storage)

    def items(self, tenant_id: str, kind: Kind) -> Sequence[RateLimitItem]:
        override = self._settings.tenant_rate_limits.get(tenant_id, {})
        default = self._settings.rate_limit_requests if kind == "requests" else self._settings.rate_limit_tokens
        return parse_many(override.get(kind, default))

    def admit(self, tenant_id: str, key_id: str) -> Decision:
        """Count one request; refuse it when a request window is full or the token window is spent.
        Every window is tested before any is counted, so a refused request counts in none."""
        for item in self.items(tenant_id, "tokens"):
            if not self._strategy.test(item, "tokens", key_id):
                return self._refusal("tokens", item, key_id)
        requests = self.items(tenant_id, "requests")
        if len(requests) > 1:  # with one window, hit() alone tests and counts atomically
            for item in requests:
                if not self._strategy.test(item, "requests", key_id):
                    return self._refusal("requests", item, key_id)
        for item in requests:
            if not self._strategy.hit(item, "requests", key_id):
                return self._refusal("requests", item, key_id)
        return Decision(True)

    def spend_tokens(self, tenant_id: str, key_id: str, tokens: int) -> None:
        if tokens <= 0:
            return
        for item in self.items(tenant_id, "tokens"):
            self._storage.add_sliding_window_entry(item.key_for("tokens", key_id), item.get_expiry(), tokens)

    def _refusal(self, kind: Kind, item: RateLimitItem, key_id: str) -> Decision:
        stats = self._strategy.get_window_stats(item, kind, key_id)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(False, kind, str(item), wait)


def rate_limited(decision: Decision) -> SourcebookError:
    return SourcebookError(
        ErrorCode.RATE_LIMITED,
        f"rate limit reached: {decision.limit} {decision.kind} per API key",
        hint=f"retry in {decision.retry_after_s} s, or ask an admin for a higher limit",
        details={"limit": decision.limit, "kind": decision.kind, "retry_after_s": decision.retry_after_s},
    )
