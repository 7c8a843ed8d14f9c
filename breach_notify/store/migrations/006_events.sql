-- The web's event journal (breach_notify/events) applied to the store.
--
-- applied_events: the id of every journal entry already applied ('in:' + MessageSid for an
-- inbound message, 'st:' + MessageSid + ':' + status for a callback), written in the same
-- transaction as the entry's effects, so an entry is applied at most once whatever crashes
-- between the store's commit and the journal's mark. Gateway ids only, no PII.
CREATE TABLE applied_events (
    event_id   VARCHAR PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- When each subscriber last decided about consent (STOP, START, YES, a confirmation, an
-- import, the carrier's opt-out). A journal entry older than this is not applied: consent
-- never goes backwards in time (subscribers/consent.py).
CREATE TABLE consent_clock (
    subscriber_id VARCHAR PRIMARY KEY,
    decided_at    TIMESTAMPTZ NOT NULL
);
