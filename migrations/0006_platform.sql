-- The serving platform: uploaded files waiting for their ingestion job, a per-tenant index version
-- (bumped by any document change; the answer cache keys on it), the answer cache, shared rate-limit
-- counters, and what `usage` needs beyond the first cut.
-- depends: 0005_answers

-- Uploads live in the database until their job has run, so workers on any machine can read them
-- without a shared disk, and a file name is never used as a path.
CREATE TABLE uploads (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    filename      text NOT NULL,
    mime_type     text NOT NULL,
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    sha256        text NOT NULL,
    data          bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_tenant_idx ON uploads (tenant_id, created_at);

ALTER TABLE tenants ADD COLUMN index_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION sourcebook_bump_index_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE tenants SET index_version = index_version + 1 WHERE id = OLD.tenant_id;
        RETURN OLD;
    END IF;
    UPDATE tenants SET index_version = index_version + 1 WHERE id = NEW.tenant_id;
    RETURN NEW;
END
$$;

-- Deferred to commit: the tenant's row is locked for an instant at the end of each document's
-- transaction, not while its chunks are written, so a tenant's writers don't queue on it.
CREATE CONSTRAINT TRIGGER documents_index_version
    AFTER INSERT OR UPDATE OR DELETE ON documents
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION sourcebook_bump_index_version();

-- key = sha256 of (tenant, groups, question, history, index version, prompt version, model, parameters).
CREATE TABLE answer_cache (
    key            text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    answer_id      uuid NOT NULL REFERENCES answers (id) ON DELETE CASCADE,
    index_version  bigint NOT NULL,
    hits           integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_hit_at    timestamptz
);
CREATE INDEX answer_cache_tenant_idx ON answer_cache (tenant_id, index_version);

-- Rate-limit counters shared by every API process (the `limits` library's storage). Unlogged: a
-- crash forgets the current minute's counts, which is harmless.
CREATE UNLOGGED TABLE rate_limit_counters (
    key         text PRIMARY KEY,
    count       bigint NOT NULL,
    expires_at  double precision NOT NULL
);

ALTER TABLE usage
    ADD COLUMN cached         boolean NOT NULL DEFAULT false,
    ADD COLUMN generation_s   double precision NOT NULL DEFAULT 0,
    ADD COLUMN stage_ms       jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN price_basis    text NOT NULL DEFAULT 'unpriced';

-- /metrics reads ingestion throughput of the last minutes across tenants.
CREATE INDEX ingest_results_created_idx ON ingest_results (created_at);
