-- Guardrails: each tenant's policy, versioned (every `set` adds a version; the newest applies, and
-- each answer records the version it was checked under), and the human review queue of answers.
-- depends: 0007_retrieval_tuning

-- Version 0 is the built-in default and is never stored. The key that set a version is kept as
-- plain text, not a reference: the history must still say who set it after the key row is gone.
CREATE TABLE tenant_policies (
    tenant_id       text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version         integer NOT NULL CHECK (version > 0),
    policy          jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by_key  text,
    PRIMARY KEY (tenant_id, version)
);

-- Answers held for a person: flagged by the tenant's policy, below its support threshold, or
-- down-voted. Columns are read by the eval suite (a correction becomes a golden example).
CREATE TABLE reviews (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id             text NOT NULL,
    answer_id             uuid NOT NULL REFERENCES answers (id) ON DELETE CASCADE,
    reason                text NOT NULL,
    status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'approved', 'corrected', 'rejected')),
    corrected_answer      text NULL,
    supporting_chunk_ids  bigint[] NOT NULL DEFAULT '{}',
    reviewer_key_id       text NULL,
    note                  text NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    decided_at            timestamptz NULL,
    CONSTRAINT reviews_decided_check CHECK ((status = 'pending') = (decided_at IS NULL)),
    CONSTRAINT reviews_correction_check CHECK ((status = 'corrected') = (corrected_answer IS NOT NULL))
);

-- At most one open review per answer: a second reason joins the open one (ON CONFLICT on this index).
CREATE UNIQUE INDEX reviews_open_answer_idx ON reviews (answer_id) WHERE status = 'pending';
-- The queue as reviewers page through it: a tenant's reviews of one status, oldest first.
CREATE INDEX reviews_tenant_status_idx ON reviews (tenant_id, status, id);

-- The `review` scope: keys of the people who decide the queue.
ALTER TABLE api_keys
    DROP CONSTRAINT api_keys_scopes_check,
    ADD CONSTRAINT api_keys_scopes_check
        CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['ask', 'ingest', 'admin', 'eval', 'review']);
