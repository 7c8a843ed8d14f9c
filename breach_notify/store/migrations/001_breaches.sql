-- Breaches and their pseudonyms (DESIGN §1.2-1.4). No value of any dump field is stored.
CREATE TABLE breaches (
    id                VARCHAR PRIMARY KEY,
    title             VARCHAR NOT NULL,
    format            VARCHAR NOT NULL,
    key_id            VARCHAR NOT NULL,            -- pseudonym key version the breach was hashed under
    k                 INTEGER NOT NULL,
    prefix_bits       INTEGER NOT NULL DEFAULT 0,
    min_bucket        BIGINT,
    rows_read         BIGINT NOT NULL DEFAULT 0,
    rows_invalid      BIGINT NOT NULL DEFAULT 0,
    rows_duplicate    BIGINT NOT NULL DEFAULT 0,
    distinct_numbers  BIGINT NOT NULL DEFAULT 0,
    invalid_by_reason JSON,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Files already ingested into a breach, recognised by content hash (SHA-256 of the bytes, hex).
CREATE TABLE breach_files (
    breach_id      VARCHAR NOT NULL,
    content_sha256 VARCHAR NOT NULL,
    name           VARCHAR NOT NULL,
    bytes          BIGINT NOT NULL,
    rows_read      BIGINT NOT NULL,
    ingested_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (breach_id, content_sha256)
);

-- One row per distinct pseudonym per breach; kinds = bitmask of exposed kinds of field
-- (bit i = breach_notify.store.ingest.rows.KINDS[i]). Buckets are the first L bits.
-- No primary key on purpose: an ART index over hundreds of millions of rows costs more than
-- the ingest's own set-based deduplication.
CREATE TABLE breach_pseudonyms (
    breach_id VARCHAR NOT NULL,
    pseudonym BLOB NOT NULL,
    kinds     USMALLINT NOT NULL
);
