-- Subscribers (DESIGN §1.5, §1.6): pseudonym + sealed number + consent trail, no plaintext.
--
-- Matching across pseudonym-key rotations (decision, owner: subscribers):
--   subscribers.pseudonym is the pseudonym under the subscriber's current key
--   (pseudonym_key_id, normally the active key). Table subscriber_pseudonyms (defined in
--   003_notices.sql, which the matcher's owner keeps; settled, do not move it) holds one row per
--   (subscriber, key version) for every key version that is active OR the key_id of some breach, so a breach hashed
--   under an older key still matches. It may repeat the current key's pseudonym: notify/match.py
--   unions both sources and groups by (subscriber, breach), so that is harmless.
--   Rows are written on add/import, on `keys rotate --pseudonym`, and by
--   breach_notify.subscribers.pseudonyms.sync(conn, keyring), which is cheap when nothing is
--   missing (call it before matching, e.g. when a breach was ingested under a key some subscribers
--   lack). Erasure and expiry delete them.
CREATE TABLE subscribers (
    id               VARCHAR PRIMARY KEY,          -- random, meaningless
    status           VARCHAR NOT NULL,             -- pending | active | opted_out | erased
    pseudonym        BLOB,                         -- HMAC(pseudonym key, e164); NULL once erased
    pseudonym_key_id VARCHAR,
    sealed           BLOB,                         -- AES-GCM(nonce || ct), row id as AAD; NULL once erased
    seal_key_id      VARCHAR,
    language         VARCHAR NOT NULL DEFAULT 'en',
    confirmed_at     TIMESTAMPTZ,                  -- set once double opt-in (or import) confirmed
    consent_source   VARCHAR,                      -- 'sms-double-opt-in' or the import's evidence text
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every change of state, no PII.
CREATE SEQUENCE subscriber_events_seq;
CREATE TABLE subscriber_events (
    id            BIGINT PRIMARY KEY DEFAULT nextval('subscriber_events_seq'),
    subscriber_id VARCHAR NOT NULL,
    event         VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    occurred_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Confirmation codes, stored only as a keyed hash (HMAC under the `code` key of
-- subscriber id + code). Rows outlive their expiry for a day: they are the rate-limit record.
CREATE SEQUENCE confirmation_codes_seq;
CREATE TABLE confirmation_codes (
    id            BIGINT PRIMARY KEY DEFAULT nextval('confirmation_codes_seq'),
    subscriber_id VARCHAR NOT NULL,
    code_hash     BLOB NOT NULL,
    code_key_id   VARCHAR NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    used_at       TIMESTAMPTZ
);
