-- Consent that lasts (DESIGN §1.5): a number that opted out or was erased keeps one row per
-- pseudonym key version here, HMAC only (no sealed number, no subscriber id), so an operator's
-- import of an old list cannot bring it back. Only the person's own fresh double opt-in (a code
-- or a YES from the number itself) deletes it. Written and read by
-- breach_notify.subscribers.suppression.
CREATE TABLE suppressions (
    key_id     VARCHAR NOT NULL,               -- pseudonym key version of `pseudonym`
    pseudonym  BLOB NOT NULL,                  -- HMAC(pseudonym key, e164)
    reason     VARCHAR NOT NULL,               -- opted_out | erased
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, pseudonym)
);
