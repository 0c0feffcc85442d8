-- Sourcebook's first schema: tenants, API keys, embedding spaces, documents, chunks, answers
-- (provenance), feedback and usage. DESIGN.md §4.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only HMAC-SHA256(pepper, key) is stored; the key itself is shown once, at creation.
CREATE TABLE api_keys (
    id            text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL,
    secret_hash   bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    scopes        text[] NOT NULL
                  CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['ask', 'ingest', 'admin', 'eval']),
    groups        text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- One row per embedding model. Vectors of different models never share an index or a query:
-- each space gets its own partial HNSW index over embedding::vector(dim) (see sourcebook.db.spaces).
CREATE TABLE embedding_spaces (
    id          smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model       text NOT NULL UNIQUE,
    dim         integer NOT NULL CHECK (dim BETWEEN 1 AND 16000),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE documents (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    source_uri    text NOT NULL,
    title         text NOT NULL DEFAULT '',
    mime_type     text NOT NULL,
    content_hash  text NOT NULL,
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    version       integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    acl_groups    text[] NOT NULL,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
    error         text,
    metadata      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, source_uri)
);
CREATE INDEX documents_tenant_status_idx ON documents (tenant_id, status);

CREATE TABLE chunks (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id         uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    tenant_id           text NOT NULL,
    ordinal             integer NOT NULL CHECK (ordinal >= 0),
    text                text NOT NULL,
    heading_path        text[] NOT NULL DEFAULT '{}',
    page                integer,
    token_count         integer NOT NULL CHECK (token_count >= 0),
    acl_groups          text[] NOT NULL,
    content_hash        text NOT NULL,
    embedding_space_id  smallint NOT NULL REFERENCES embedding_spaces (id),
    embedding           vector NOT NULL,
    metadata            jsonb NOT NULL DEFAULT '{}',
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_tenant_idx ON chunks (tenant_id);
CREATE INDEX chunks_acl_groups_idx ON chunks USING gin (acl_groups);
CREATE INDEX chunks_content_hash_idx ON chunks (embedding_space_id, content_hash);

-- The provenance of every answer: enough to replay it.
CREATE TABLE answers (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    api_key_id         text REFERENCES api_keys (id) ON DELETE SET NULL,
    question           text NOT NULL,
    history_hash       text,
    rewritten_query    text,
    retrieved          jsonb NOT NULL DEFAULT '[]',
    cited_chunk_ids    bigint[] NOT NULL DEFAULT '{}',
    answer             text NOT NULL,
    verdict            text NOT NULL,
    model              text NOT NULL,
    prompt_version     text NOT NULL,
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    latency_ms         jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX answers_tenant_created_idx ON answers (tenant_id, created_at);

CREATE TABLE feedback (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    answer_id   uuid NOT NULL REFERENCES answers (id) ON DELETE CASCADE,
    api_key_id  text REFERENCES api_keys (id) ON DELETE SET NULL,
    rating      smallint NOT NULL CHECK (rating IN (-1, 1)),
    comment     text,
    correction  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_answer_idx ON feedback (answer_id);

CREATE TABLE usage (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id          text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    api_key_id         text REFERENCES api_keys (id) ON DELETE SET NULL,
    answer_id          uuid REFERENCES answers (id) ON DELETE SET NULL,
    route              text NOT NULL,
    model              text,
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    cost_usd           double precision NOT NULL DEFAULT 0,
    latency_ms         double precision NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_tenant_created_idx ON usage (tenant_id, created_at);
