-- The outbox (DESIGN §6): one notice per (subscriber, breach).
-- States: pending -> sending -> sent -> delivered | undelivered, plus failed (permanent error),
-- suppressed (opted out or erased before sending), in_doubt (crash between request and record;
-- resent only on `send --resend-in-doubt`). A quiet-hours deferral leaves a notice pending.
CREATE TABLE notices (
    id            VARCHAR PRIMARY KEY,
    subscriber_id VARCHAR NOT NULL,
    breach_id     VARCHAR NOT NULL,
    state         VARCHAR NOT NULL,
    kinds         USMALLINT NOT NULL DEFAULT 0,  -- kinds of field exposed for this subscriber
    attempts      INTEGER NOT NULL DEFAULT 0,    -- requests made to a gateway
    attempt_at    TIMESTAMPTZ,                   -- when the last request started (reconciliation)
    sent_at       TIMESTAMPTZ,
    gateway_id    VARCHAR,                       -- the gateway's message id (Twilio SM…)
    error_code    VARCHAR,                       -- the gateway's error code, never its text
    segments      INTEGER,
    delivered_at  TIMESTAMPTZ,                   -- delivery callbacks (notify/outbox.py)
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (subscriber_id, breach_id)
);

-- One row per (subscriber, pseudonym key version still needed): the active key and every
-- breach's key_id, so a breach hashed under an older key still matches after
-- `keys rotate --pseudonym`. Written and pruned by breach_notify.subscribers.pseudonyms (see
-- 002_subscribers.sql); read by notify/match.py together with subscribers.pseudonym.
CREATE TABLE subscriber_pseudonyms (
    subscriber_id VARCHAR NOT NULL,
    key_id        VARCHAR NOT NULL,
    pseudonym     BLOB NOT NULL,
    PRIMARY KEY (subscriber_id, key_id)
);
