-- Answer evals: golden sets with their items, runs of a set through the answer service (the
-- configuration, one row per item scored, the metrics when finished), and each set's baseline run.
-- A run's items are rows of their own so that an interrupted run resumes where it stopped.

CREATE TABLE eval_sets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name <> ''),
    version      integer NOT NULL DEFAULT 1 CHECK (version > 0),
    corpus       text NOT NULL,
    -- where the corpus folder was when the set was imported (NULL: the set asks a tenant's documents)
    corpus_path  text,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE eval_items (
    set_id    bigint NOT NULL REFERENCES eval_sets (id) ON DELETE CASCADE,
    item_id   text NOT NULL,
    position  integer NOT NULL CHECK (position >= 0),
    -- {id, question, reference_answer?, reference_contexts?, reference_chunk_ids?, must_abstain?, memory_answer?, tags}
    item      jsonb NOT NULL,
    PRIMARY KEY (set_id, item_id)
);

CREATE TABLE eval_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    set_id       bigint NOT NULL REFERENCES eval_sets (id) ON DELETE CASCADE,
    set_version  integer NOT NULL,
    -- {tenant, prompt_version, model, temperature, max_passages, limit, seed, item_ids, label}
    config       jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'finished')),
    metrics      jsonb,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX eval_runs_set_idx ON eval_runs (set_id, started_at DESC);

CREATE TABLE eval_results (
    run_id       bigint NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    item_id      text NOT NULL,
    -- {result, answer, cited, cited_chunk_ids, outcome, flagged, model, ms, first_token_ms, scores}
    result       jsonb NOT NULL,
    -- the answer's provenance record (no foreign key: a failed question has none, and answers age out)
    answer_id    uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, item_id)
);

CREATE TABLE eval_baselines (
    set_id      bigint PRIMARY KEY REFERENCES eval_sets (id) ON DELETE CASCADE,
    run_id      bigint NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- How far the judges can be trusted: each meta-eval (ragas Faithfulness and the groundedness guard
-- against HaluEval-QA's labels) is kept; every report's header shows the newest.
CREATE TABLE eval_meta (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset     text NOT NULL,
    -- {"judges": {name: {"balanced_accuracy", "auroc", "items", "failures"}}, "command": ...}
    figures     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
