-- Ingestion: what each chunk is and the context embedded with it, how each document was
-- ingested (so a change of parser, chunker or model re-ingests), and each ingestion's outcome.
-- depends: 0001_initial

ALTER TABLE documents
    ADD COLUMN ingest_fingerprint text NOT NULL DEFAULT '',
    ADD COLUMN chunk_count integer NOT NULL DEFAULT 0 CHECK (chunk_count >= 0);

ALTER TABLE chunks
    ADD COLUMN kind text NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'table')),
    ADD COLUMN context text NOT NULL DEFAULT '';

-- One row per ingestion attempt's result, written by the job (success in the same transaction as
-- the document); `sourcebook ingest` reads it for progress and the summary table.
CREATE TABLE ingest_results (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id      uuid NOT NULL,
    job_id        bigint,
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    source_uri    text NOT NULL,
    document_id   uuid REFERENCES documents (id) ON DELETE SET NULL,
    outcome       text NOT NULL CHECK (outcome IN ('ingested', 'updated', 'unchanged', 'acl_updated',
                                                   'duplicate', 'removed', 'failed')),
    detail        text NOT NULL DEFAULT '',
    attempt       integer NOT NULL DEFAULT 1,
    final         boolean NOT NULL DEFAULT true,
    chunks        integer NOT NULL DEFAULT 0,
    embedded      integer NOT NULL DEFAULT 0,
    timings_ms    jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_results_batch_idx ON ingest_results (batch_id);
CREATE INDEX ingest_results_tenant_created_idx ON ingest_results (tenant_id, created_at);
