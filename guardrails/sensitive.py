"""Secrets and personal data in a text, located by span so that they can be redacted.

Secrets: detect-secrets' default plugins and filters over the whole text, as its ``SecretsCollection``
scans a file (its ad-hoc per-line scan reports the entropy plugins on ordinary prose, so it is not
used). PII: presidio's pattern recognizers with ``NoOpNlpEngine``, so no spaCy model is needed; its
e-mail recognizer checks domains with tldextract, which would fetch the public suffix list from the
network, so ours uses tldextract's bundled snapshot instead. Names of people, places and companies
need a NER model and are not found.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guardrails.types import Sensitive

# The entities worth protecting in a question or an answer. DATE_TIME and URL are left out on
# purpose: dates and links are ordinary content of company documents, and presidio's URL pattern also
# fires inside e-mail addresses.
PII_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "UK_NHS",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "CRYPTO",
    "MEDICAL_LICENSE",
)
# presidio scores the bare US number patterns (bank account, passport, licence) at 0.01-0.05 on any
# run of digits; 0.4 keeps validated matches (Luhn, IBAN checksum, e-mail, phone) and drops those.
PII_MIN_SCORE = 0.4
# A reported value is widened over word characters and hyphens only, so a password inside a URL is
# redacted without the host around it.
_TOKEN_CHARS = r"[\w\-]"  # noqa: S105 (a pattern, not a password)


# What every default detect-secrets plugin needs before it can report anything: a long token mixing
# letters and digits (keys, tokens, high-entropy strings, Artifactory's 11-character ones), an IPv4
# address, a URL with credentials, a PEM header, or a keyword that names a secret. Text with none of
# them (most answer sentences) skips the scan, which costs ~5 ms a call; a test holds the two equal.
_SECRET_HINT = re.compile(
    r"(?=[\w+/=.\-]{11,})(?=[\w+/=.\-]*\d)(?=[\w+/=.\-]*[A-Za-z])[\w+/=.\-]{11,}"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b|://[^\s/]*@|BEGIN|"
    r"(?i:pass|pwd|secret|token|key|auth|cred|api|bearer|private)",
)


def may_hold_secret(text: str) -> bool:
    """Whether detect-secrets could find anything in ``text`` (a cheap superset of its plugins' needs)."""
    return _SECRET_HINT.search(text) is not None


class SecretScanner:
    """detect-secrets with its default settings. Its settings are process-global, so scans are serialised."""

    _lock = threading.Lock()

    def scan(self, text: str) -> tuple[Sensitive, ...]:
        return self.scan_all(text) if may_hold_secret(text) else ()

    def scan_all(self, text: str) -> tuple[Sensitive, ...]:
        """detect-secrets on ``text`` whatever it holds (``scan`` skips text it could find nothing in)."""
        from detect_secrets.core.secrets_collection import SecretsCollection
        from detect_secrets.settings import default_settings

        lines = text.split("\n")
        with self._lock, default_settings(), tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "text.txt"
            path.write_text(text, encoding="utf-8")
            collection = SecretsCollection(root=folder)
            collection.scan_file(str(path))
            found = [(secret.type, secret.line_number, secret.secret_value) for _, secret in collection]
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line) + 1)
        spans = (_locate(kind, lines, offsets, number, value) for kind, number, value in found)
        return tuple(sorted((s for s in spans if s is not None), key=lambda s: s.start))


def _locate(
    kind: str, lines: Sequence[str], offsets: Sequence[int], number: int, value: str | None
) -> Sensitive | None:
    """The span of a reported secret: its value widened to the token around it (a plugin may report
    only the prefix it matched, e.g. ``ghp`` for a GitHub token)."""
    if not value or not 1 <= number <= len(lines):
        return None
    line = lines[number - 1]
    at = line.find(value)
    if at < 0:
        return None
    before = re.search(rf"{_TOKEN_CHARS}*$", line[:at])
    after = re.match(rf"{_TOKEN_CHARS}*", line[at + len(value) :])
    start = at - (len(before.group()) if before else 0)
    end = at + len(value) + (len(after.group()) if after else 0)
    return Sensitive("secret", kind, offsets[number - 1] + start, offsets[number - 1] + end, 1.0)


class PiiScanner:
    """presidio's pattern recognizers, offline. Cheap to build; ``warm_up`` loads them (~5 s, spaCy's import)."""

    def __init__(self, entities: Sequence[str] = PII_ENTITIES, min_score: float = PII_MIN_SCORE) -> None:
        self.entities = tuple(entities)
        self.min_score = min_score
        self._engine: Any = None

    def warm_up(self) -> None:
        if self._engine is not None:
            return
        # Loading logs each recognizer at INFO and a warning for every language not asked for.
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine

        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        nlp.load()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
        registry.remove_recognizer("EmailRecognizer")
        registry.add_recognizer(_offline_email_recognizer())
        self._engine = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])

    def scan(self, text: str) -> tuple[Sensitive, ...]:
        self.warm_up()
        results = self._engine.analyze(
            text, language="en", entities=list(self.entities), score_threshold=self.min_score
        )
        spans = [Sensitive("pii", r.entity_type, r.start, r.end, float(r.score)) for r in results]
        return tuple(sorted(spans, key=lambda s: (s.start, -s.end)))


def _offline_email_recognizer() -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # No suffix-list URLs and no cache directory: tldextract answers from the snapshot in its wheel.
    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extract(pattern_text).fqdn)

    return OfflineEmailRecognizer()


class SensitiveScanner:
    """Secrets and PII together, in the order they appear."""

    def __init__(self, secrets: SecretScanner | None = None, pii: PiiScanner | None = None) -> None:
        self.secrets = secrets or SecretScanner()
        self.pii = pii or PiiScanner()

    def warm_up(self) -> None:
        self.pii.warm_up()

    def scan(self, text: str) -> tuple[Sensitive, ...]:
        found = self.secrets.scan(text) + self.pii.scan(text)
        return tuple(sorted(found, key=lambda s: (s.start, -s.end)))
