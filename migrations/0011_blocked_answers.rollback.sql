DELETE FROM answers WHERE verdict = 'blocked';

ALTER TABLE answers DROP CONSTRAINT answers_verdict_check;

ALTER TABLE answers
    ADD CONSTRAINT answers_verdict_check
    CHECK (verdict IN ('answer', 'abstain', 'extractive', 'incomplete'));
