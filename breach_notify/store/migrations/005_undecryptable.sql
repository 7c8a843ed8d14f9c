-- A notice whose number cannot be decrypted (its seal key is missing from the keyring, or is not
-- the key it was sealed with) becomes `undecryptable`, not `suppressed`: it goes back to
-- `pending` once its number opens again (notify/outbox.py: retry_undecryptable).
-- The states become part of the schema: a CHECK lists them, so a new state needs a migration.
-- A new table (rows copied): DuckDB cannot add a constraint to an existing table.
CREATE TABLE notices_005 (
    id            VARCHAR PRIMARY KEY,
    subscriber_id VARCHAR NOT NULL,
    breach_id     VARCHAR NOT NULL,
    state         VARCHAR NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'delivered',
                      'undelivered', 'failed', 'suppressed', 'in_doubt', 'undecryptable')),
    kinds         USMALLINT NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    attempt_at    TIMESTAMPTZ,
    sent_at       TIMESTAMPTZ,
    gateway_id    VARCHAR,
    error_code    VARCHAR,
    segments      INTEGER,
    delivered_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (subscriber_id, breach_id)
);
INSERT INTO notices_005 (id, subscriber_id, breach_id, state, kinds, attempts, attempt_at,
                         sent_at, gateway_id, error_code, segments, delivered_at, created_at,
                         updated_at)
SELECT id, subscriber_id, breach_id, state, kinds, attempts, attempt_at, sent_at, gateway_id,
       error_code, segments, delivered_at, created_at, updated_at
FROM notices;
DROP TABLE notices;
ALTER TABLE notices_005 RENAME TO notices;
