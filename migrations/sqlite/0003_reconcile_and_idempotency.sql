-- Why a room is queued: 'change' (someone changed it; reported as pending) or 'reconcile' (the
-- periodic drift check; invisible unless it fails).
ALTER TABLE sync_jobs ADD COLUMN reason TEXT NOT NULL DEFAULT 'change';

-- Idempotency-Key of creating requests: a retry returns the room the first request created.
CREATE TABLE idempotency_keys (
    caller TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    operation TEXT NOT NULL,
    -- Hash of what was asked: the same key with a different request is refused.
    fingerprint TEXT NOT NULL,
    chatroom_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (caller, idem_key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
