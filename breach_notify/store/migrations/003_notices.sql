-- The outbox (DESIGN §6): one notice per (subscriber, breach).
CREATE TABLE notices (
    id            VARCHAR PRIMARY KEY,
    subscriber_id VARCHAR NOT NULL,
    breach_id     VARCHAR NOT NULL,
    state         VARCHAR NOT NULL,  -- pending|sending|sent|delivered|undelivered|failed|suppressed|in_doubt
    attempts      INTEGER NOT NULL DEFAULT 0,
    attempt_at    TIMESTAMPTZ,
    sent_at       TIMESTAMPTZ,
    gateway_id    VARCHAR,
    error_code    VARCHAR,
    segments      INTEGER,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (subscriber_id, breach_id)
);
