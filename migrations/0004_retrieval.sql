-- Retrieval: exact Okapi BM25 inside PostgreSQL, and the per-tenant glossary of the query rewriter.
-- depends: 0003_procrastinate
--
-- Each chunk stores its BM25 terms as a tsvector built by the application's tokenizer (never
-- to_tsvector): a term's frequency is its number of positions, bm25_len the chunk's term count.
-- Per tenant, bm25_stats holds N and the summed length, bm25_terms each term's document frequency.
-- Statistics are per tenant so that no tenant's scores depend on another tenant's documents.
-- Statement-level triggers keep them exact in the same transaction as any insert, delete or update
-- of chunks (cascades included). avg_idf (the mean idf over the whole vocabulary, which rank-bm25's
-- epsilon floor needs) changes with N, so writes only clear it; the search computes and caches it.
-- Lock order: a tenant's stats row first, then its terms (sorted), so concurrent writers of one
-- tenant queue on the stats row instead of deadlocking.

ALTER TABLE chunks
    ADD COLUMN bm25 tsvector,
    ADD COLUMN bm25_len integer CHECK (bm25_len >= 0);
CREATE INDEX chunks_bm25_idx ON chunks USING gin (bm25);

CREATE TABLE bm25_stats (
    tenant_id  text PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    n          bigint NOT NULL DEFAULT 0 CHECK (n >= 0),
    total_len  bigint NOT NULL DEFAULT 0 CHECK (total_len >= 0),
    version    bigint NOT NULL DEFAULT 0,
    avg_idf    double precision
);

CREATE TABLE bm25_terms (
    tenant_id  text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    term       text NOT NULL,
    df         integer NOT NULL CHECK (df >= 0),
    PRIMARY KEY (tenant_id, term)
);

CREATE FUNCTION bm25_add_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bm25_stats AS s (tenant_id, n, total_len, version)
    SELECT tenant_id, count(*), sum(bm25_len), 1 FROM bm25_new WHERE bm25 IS NOT NULL
    GROUP BY tenant_id ORDER BY tenant_id
    ON CONFLICT (tenant_id) DO UPDATE
        SET n = s.n + EXCLUDED.n, total_len = s.total_len + EXCLUDED.total_len,
            version = s.version + 1, avg_idf = NULL;
    INSERT INTO bm25_terms AS t (tenant_id, term, df)
    SELECT c.tenant_id, l.term, count(*) FROM bm25_new c, unnest(tsvector_to_array(c.bm25)) AS l(term)
    WHERE c.bm25 IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (tenant_id, term) DO UPDATE SET df = t.df + EXCLUDED.df;
    RETURN NULL;
END $$;

CREATE FUNCTION bm25_remove_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE bm25_stats s SET n = s.n - d.n, total_len = s.total_len - d.len, version = s.version + 1, avg_idf = NULL
    FROM (SELECT tenant_id, count(*) AS n, sum(bm25_len) AS len FROM bm25_old WHERE bm25 IS NOT NULL
          GROUP BY tenant_id) d
    WHERE s.tenant_id = d.tenant_id;
    UPDATE bm25_terms t SET df = t.df - g.df
    FROM (SELECT c.tenant_id, l.term, count(*) AS df FROM bm25_old c, unnest(tsvector_to_array(c.bm25)) AS l(term)
          WHERE c.bm25 IS NOT NULL GROUP BY 1, 2) g
    WHERE t.tenant_id = g.tenant_id AND t.term = g.term;
    DELETE FROM bm25_terms t
    USING (SELECT DISTINCT c.tenant_id, l.term FROM bm25_old c, unnest(tsvector_to_array(c.bm25)) AS l(term)
           WHERE c.bm25 IS NOT NULL) g
    WHERE t.tenant_id = g.tenant_id AND t.term = g.term AND t.df = 0;
    RETURN NULL;
END $$;

-- An update that changes no BM25 data (access lists, metadata) costs nothing here.
CREATE FUNCTION bm25_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM bm25_old o JOIN bm25_new n USING (id)
               WHERE (o.bm25, o.bm25_len, o.tenant_id) IS DISTINCT FROM (n.bm25, n.bm25_len, n.tenant_id)) THEN
        RAISE EXCEPTION 'chunks'' BM25 data is written once: delete and insert the chunk instead'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER chunks_bm25_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS bm25_new FOR EACH STATEMENT EXECUTE FUNCTION bm25_add_new();
CREATE TRIGGER chunks_bm25_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS bm25_old FOR EACH STATEMENT EXECUTE FUNCTION bm25_remove_old();
CREATE TRIGGER chunks_bm25_update AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS bm25_old NEW TABLE AS bm25_new FOR EACH STATEMENT EXECUTE FUNCTION bm25_update();

-- The rules-only query rewriter's per-tenant glossary: a term (an acronym, a product name) and what
-- to add to a query that uses it.
CREATE TABLE glossary (
    tenant_id   text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    term        text NOT NULL CHECK (term <> ''),
    expansions  text[] NOT NULL CHECK (cardinality(expansions) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, term)
);
