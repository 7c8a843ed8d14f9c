-- Subscribers (DESIGN §1.5, §1.6): pseudonym + sealed number + consent trail, no plaintext.
CREATE TABLE subscribers (
    id               VARCHAR PRIMARY KEY,          -- random, meaningless
    status           VARCHAR NOT NULL,             -- pending | active | opted_out | erased
    pseudonym        BLOB,                         -- HMAC(pseudonym key, e164); NULL once erased
    pseudonym_key_id VARCHAR,
    sealed           BLOB,                         -- AES-GCM(nonce || ct), row id as AAD; NULL once erased
    seal_key_id      VARCHAR,
    language         VARCHAR NOT NULL DEFAULT 'en',
    confirmed_at     TIMESTAMPTZ,                  -- set once double opt-in (or import) confirmed
    consent_source   VARCHAR,
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

-- Confirmation codes, stored only as a keyed hash.
CREATE TABLE confirmation_codes (
    subscriber_id VARCHAR NOT NULL,
    code_hash     BLOB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    used_at       TIMESTAMPTZ
);
