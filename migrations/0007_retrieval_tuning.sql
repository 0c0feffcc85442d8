-- Per-tenant retrieval calibration (`sourcebook tune retrieval`): every run is kept with its figures;
-- a tenant's searches use its newest row.

CREATE TABLE retrieval_tunings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- {"fusion", "alpha", "weight_bm25", "weight_vector", "k1", "b"}
    choice       jsonb NOT NULL,
    -- validation figures: MRR@10 of the chosen and the default settings (and each arm) on the
    -- questions held out from the choice, the same on the questions it was chosen on, and the costs
    figures      jsonb NOT NULL,
    question_source text NOT NULL CHECK (question_source IN ('model', 'headings')),
    questions    integer NOT NULL CHECK (questions >= 0),
    chunks       integer NOT NULL CHECK (chunks >= 0)
);

CREATE INDEX retrieval_tunings_tenant_idx ON retrieval_tunings (tenant_id, created_at DESC, id DESC);
