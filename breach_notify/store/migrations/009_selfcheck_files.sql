-- Re-tagging for the private self-check (docs/SELFCHECK.md). A breach's tags form one *set* per
-- OPRF key (selfcheck_tags.oprf_key_id); the set under selfcheck_breaches.oprf_key_id is the one
-- served. A set under another key (after `keys rotate --oprf`, or for a breach ingested before
-- the self-check was turned on) fills up as the breach's files are given again, and replaces the
-- served one, in one transaction, only once every file of the breach is tagged under its key.
-- Which files (by content digest) each set covers:
CREATE TABLE selfcheck_files (
    breach_id      VARCHAR NOT NULL,
    content_sha256 VARCHAR NOT NULL,
    oprf_key_id    VARCHAR NOT NULL,
    tagged_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (breach_id, content_sha256, oprf_key_id)
);

-- Each set's bucket width (a set being filled keeps the served set's width, so a switch of key
-- changes no bucket).
CREATE TABLE selfcheck_sets (
    breach_id   VARCHAR NOT NULL,
    oprf_key_id VARCHAR NOT NULL,
    bucket_bits INTEGER NOT NULL,
    PRIMARY KEY (breach_id, oprf_key_id)
);

-- Breaches tagged before this migration: every file they hold counts as tagged under their key
-- (the ingest tagged every later file of a tagged breach).
INSERT INTO selfcheck_files (breach_id, content_sha256, oprf_key_id)
SELECT f.breach_id, f.content_sha256, s.oprf_key_id
FROM breach_files f JOIN selfcheck_breaches s ON s.breach_id = f.breach_id;

INSERT INTO selfcheck_sets (breach_id, oprf_key_id, bucket_bits)
SELECT breach_id, oprf_key_id, bucket_bits FROM selfcheck_breaches;
