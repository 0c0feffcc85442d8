-- The injection screen's mark on each chunk (guardrails/screen.py, run at ingestion): flagged chunks are
-- kept and shown with their mark, never dropped. guard_screen names the screen that made the mark (its
-- rules and classifier versions); NULL means the chunk was stored before any screen ran on it, and
-- `sourcebook guard scan` fills in those, and re-marks chunks whose screen has changed since.
-- depends: 0007_retrieval_tuning

ALTER TABLE chunks
    ADD COLUMN guard_flags  text[],
    ADD COLUMN guard_score  real,
    ADD COLUMN guard_screen text;
