-- Answers: what the provenance record needs beyond the first cut, to replay an answer: the
-- rewrite (method and texts), the citations as resolved (number, chunk, quote), the verdict's
-- findings, the endpoint that generated it, the number of earlier turns, and whether the answer
-- came from the model or is the extractive fallback.
-- depends: 0004_retrieval

ALTER TABLE answers
    ADD COLUMN rewrite         jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN citations       jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN verdict_detail  jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN flagged         boolean NOT NULL DEFAULT false,
    ADD COLUMN history_turns   integer NOT NULL DEFAULT 0 CHECK (history_turns >= 0),
    ADD COLUMN endpoint        text;

ALTER TABLE answers
    ADD CONSTRAINT answers_verdict_check
    CHECK (verdict IN ('answer', 'abstain', 'extractive', 'incomplete'));

CREATE INDEX answers_flagged_idx ON answers (tenant_id, created_at) WHERE flagged;
