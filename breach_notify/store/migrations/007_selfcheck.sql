-- The private self-check (DESIGN §10). For a breach ingested with the self-check on, one row per
-- distinct number: its tag (the first 16 bytes of the RFC 9497 VOPRF output under the OPRF key
-- oprf_key_id: useless without that key) and its public bucket (the first bucket_bits bits of
-- SHA-256(domain || number), bucket_bits chosen per breach so that a bucket holds about 2^13 at
-- most). No number, pseudonym or finer hash of a number is stored here.
CREATE TABLE selfcheck_tags (
    breach_id   VARCHAR NOT NULL,
    oprf_key_id VARCHAR NOT NULL,
    bucket      UINTEGER NOT NULL,
    tag         BLOB NOT NULL
);

-- One row per breach with tags: its key, bucket width and sizes, and the kinds of field it
-- exposed (bitmask over breach_notify.kinds.KINDS, cells below the breach's k left out).
CREATE TABLE selfcheck_breaches (
    breach_id   VARCHAR PRIMARY KEY,
    oprf_key_id VARCHAR NOT NULL,
    bucket_bits INTEGER NOT NULL,
    max_bucket  BIGINT NOT NULL,
    tags        BIGINT NOT NULL,
    kinds       USMALLINT NOT NULL DEFAULT 0,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
