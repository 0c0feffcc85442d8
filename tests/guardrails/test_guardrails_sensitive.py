"""Secrets (detect-secrets) and PII (presidio patterns) in questions, offline, and the tenant policy."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import tldextract

from guardrails.policy import TenantPolicy, decide, placeholder, redact
from guardrails.sensitive import PiiScanner, SecretScanner, SensitiveScanner, may_hold_secret
from guardrails.types import Sensitive

pytestmark = pytest.mark.unit

# Well-known documentation examples, not live credentials.
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB"


@pytest.fixture(scope="module")
def scanner() -> SensitiveScanner:
    made = SensitiveScanner()
    made.warm_up()
    return made


@pytest.mark.parametrize(
    ("text", "label", "secret"),
    [
        (f"My key is {AWS_KEY}, why does it fail?", "AWS Access Key", AWS_KEY),
        (f"token {GITHUB_TOKEN} in the CI config", "GitHub Token", GITHUB_TOKEN),
        ("password = 'hunter2hunter2'", "Secret Keyword", "hunter2hunter2"),
        ("connect with postgres://admin:s3cr3tP4ss@db.internal:5432/app", "Basic Auth Credentials", "s3cr3tP4ss"),
        (
            "use sk_live_4eC39HqLyjWDarjtT1zdp7dc for the payment",
            "Stripe Access Key",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ),
    ],
)
def test_secrets_are_found_with_their_exact_span(text: str, label: str, secret: str) -> None:
    found = SecretScanner().scan(text)
    assert [(s.kind, s.label) for s in found] == [("secret", label)]
    assert text[found[0].start : found[0].end] == secret


def test_secrets_on_later_lines_have_offsets_into_the_whole_text() -> None:
    text = f"first line\nsecond line\nkey {AWS_KEY} here"
    (found,) = SecretScanner().scan(text)
    assert text[found.start : found.end] == AWS_KEY


@pytest.mark.parametrize(
    "text",
    [
        "What is the password policy? Passwords need 12 characters and a symbol.",
        "The token bucket algorithm limits each key to 60 requests a minute.",
        "Our API keys are rotated every 90 days by the platform team.",
        "The SHA-256 of the release is listed on the downloads page.",
    ],
)
def test_prose_about_secrets_is_not_a_secret(text: str) -> None:
    assert SecretScanner().scan(text) == ()


@pytest.mark.parametrize(
    ("text", "label", "value"),
    [
        ("Write to jane.doe@example.com today", "EMAIL_ADDRESS", "jane.doe@example.com"),
        ("my card is 4111 1111 1111 1111", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("IBAN DE89370400440532013000 for the refund", "IBAN_CODE", "DE89370400440532013000"),
        ("call me on +1 415-555-0132", "PHONE_NUMBER", "+1 415-555-0132"),
        ("the server at 10.20.30.40 is down", "IP_ADDRESS", "10.20.30.40"),
    ],
)
def test_pii_is_found_offline(scanner: SensitiveScanner, text: str, label: str, value: str) -> None:
    found = [s for s in scanner.scan(text) if s.label == label]
    assert found, scanner.scan(text)
    assert text[found[0].start : found[0].end] == value


def test_bare_digit_runs_and_dates_are_not_pii(scanner: SensitiveScanner) -> None:
    assert scanner.scan("Order 123456789 shipped on 2024-03-05 to building 7.") == ()


def test_the_scanners_never_open_a_network_connection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("offline")  # what a library sees without a network, and may swallow

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    tldextract.TLDExtract(cache_dir=str(tmp_path))("corp.example.org")  # the default: it fetches the list
    assert attempts, "the trap does not see tldextract's fetch"
    attempts.clear()
    fresh = SensitiveScanner(pii=PiiScanner())
    found = fresh.scan(f"mail bob@corp.example.org, key {AWS_KEY}")
    assert {s.label for s in found} == {"EMAIL_ADDRESS", "AWS Access Key"}
    assert attempts == []


def _span(kind: str, label: str, start: int, end: int) -> Sensitive:
    return Sensitive(kind, label, start, end, 1.0)  # type: ignore[arg-type]


def test_redact_replaces_spans_and_merges_overlaps() -> None:
    text = "mail a@b.co or 555-0100 now"
    spans = [_span("pii", "EMAIL_ADDRESS", 5, 11), _span("pii", "URL", 7, 11), _span("pii", "PHONE_NUMBER", 15, 23)]
    assert redact(text, spans) == "mail [EMAIL_ADDRESS] or [PHONE_NUMBER] now"
    assert redact(text, []) == text
    assert redact("abcdef", [_span("pii", "A", 0, 3), _span("pii", "B", 2, 5)]) == "[A]f"
    assert placeholder(_span("secret", "AWS Access Key", 0, 1)) == "[AWS_ACCESS_KEY]"


def test_default_policy_blocks_secrets_and_redacts_pii(scanner: SensitiveScanner) -> None:
    question = f"Why does {AWS_KEY} fail for jane.doe@example.com?"
    decision = decide(question, scanner.scan(question), TenantPolicy())
    assert decision.action == "block"
    assert decision.reason == "secret:AWS Access Key"
    assert decision.text == "Why does [AWS_ACCESS_KEY] fail for [EMAIL_ADDRESS]?"
    assert AWS_KEY not in decision.text


def test_policy_overrides_per_label_and_allows(scanner: SensitiveScanner) -> None:
    question = "Send it to jane.doe@example.com, card 4111 1111 1111 1111"
    found = scanner.scan(question)
    lenient = TenantPolicy(tenant="acme", pii="allow", labels={"CREDIT_CARD": "redact"})
    decision = decide(question, found, lenient)
    assert (decision.action, decision.reason) == ("redact", "pii:CREDIT_CARD")
    assert decision.text == "Send it to jane.doe@example.com, card [CREDIT_CARD]"
    strict = decide(question, found, TenantPolicy(pii="block"))
    assert strict.action == "block"
    assert "jane.doe" not in strict.text
    nothing = decide("When is payday?", (), TenantPolicy())
    assert (nothing.action, nothing.text, nothing.reason) == ("allow", "When is payday?", None)


SECRET_SHAPES = [
    f"key {AWS_KEY}",
    f"export GITHUB={GITHUB_TOKEN}",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN RSA PRIVATE KEY-----",
    "the server is at 203.0.113.77 now",
    "AKC1234567890abcdefg is the artifactory token",
    "SK0123456789abcdef0123456789abcdef twilio",
    "https://bob:hunter2@git.example.com/repo.git",
    'secret: "9f8e7d6c5b4a39281706f5e4d3c2b1a0"',
]


@pytest.mark.parametrize("text", SECRET_SHAPES)
def test_text_shaped_like_a_secret_is_always_scanned(text: str) -> None:
    assert may_hold_secret(text)


def test_the_prefilter_never_skips_a_line_detect_secrets_would_report() -> None:
    """On every line of the sample documents and the security questions, and the secret shapes: where
    the full scan finds a secret, the prefilter lets the line through (it may pass more, never less)."""
    root = Path(__file__).resolve().parents[2] / "data"
    lines = [*SECRET_SHAPES]
    for path in [*(root / "samples").glob("*.md"), *(root / "samples").glob("*.txt"), *(root / "guards").glob("*.txt")]:
        lines += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scanner = SecretScanner()
    reported = [line for line in lines if scanner.scan_all(line)]
    assert len(reported) >= 5
    assert all(may_hold_secret(line) for line in reported)
    skipped = sum(not may_hold_secret(line) for line in lines)
    assert skipped > len(lines) / 2  # it saves the scan on most prose
