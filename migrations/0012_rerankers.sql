-- A calibration's synthetic questions are kept with it (which chunk each was written from, whether it
-- was held out of the choice, its weight), so that `sourcebook reranker train` trains on the questions
-- the fusion was chosen on and is judged on the same held-out ones.
-- Each tenant's trained rerankers: where the model is, how it did against the tuned fusion on the
-- held-out questions, and whether it earned its place (enabled). A tenant's searches use its newest
-- enabled row.
-- depends: 0011_blocked_answers

CREATE TABLE tuning_questions (
    tuning_id  bigint NOT NULL REFERENCES retrieval_tunings (id) ON DELETE CASCADE,
    chunk_id   bigint NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
    question   text NOT NULL,
    held_out   boolean NOT NULL,
    weight     real NOT NULL CHECK (weight > 0 AND weight <= 1),
    PRIMARY KEY (tuning_id, chunk_id)
);
-- A chunk's delete (any re-ingest) finds its questions by this index.
CREATE INDEX tuning_questions_chunk_idx ON tuning_questions (chunk_id);

CREATE TABLE tenant_rerankers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    tuning_id   bigint REFERENCES retrieval_tunings (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    model_path  text NOT NULL,
    -- base model, training data and time, held-out MRR@10 of the tuned fusion and of the reranker
    figures     jsonb NOT NULL,
    enabled     boolean NOT NULL,
    reason      text NOT NULL
);

CREATE INDEX tenant_rerankers_tenant_idx ON tenant_rerankers (tenant_id, created_at DESC, id DESC);
