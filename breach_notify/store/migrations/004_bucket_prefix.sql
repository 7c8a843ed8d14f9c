-- The first 32 bits of each pseudonym as an unsigned integer, written by the ingest: the
-- k-anonymity bucket of L bits is prefix >> (32 - L), counted without slicing any blob.
-- A new table (rows copied) rather than ADD COLUMN + SET NOT NULL, which DuckDB refuses after
-- an UPDATE in the same transaction.
CREATE TABLE breach_pseudonyms_004 (
    breach_id VARCHAR NOT NULL,
    pseudonym BLOB NOT NULL,
    kinds     USMALLINT NOT NULL,
    prefix    UINTEGER NOT NULL
);
INSERT INTO breach_pseudonyms_004
SELECT breach_id, pseudonym, kinds, pseudonym[1:4]::BIT::UINTEGER FROM breach_pseudonyms;
DROP TABLE breach_pseudonyms;
ALTER TABLE breach_pseudonyms_004 RENAME TO breach_pseudonyms;
