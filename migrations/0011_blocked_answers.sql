-- Answers the guardrails stopped: a question refused before retrieval, or an answer stopped by a
-- sentence (the canary, an echoed instruction, a blocked secret) is stored with verdict 'blocked'.
-- depends: 0007_retrieval_tuning

ALTER TABLE answers DROP CONSTRAINT answers_verdict_check;

ALTER TABLE answers
    ADD CONSTRAINT answers_verdict_check
    CHECK (verdict IN ('answer', 'abstain', 'extractive', 'incomplete', 'blocked'));
