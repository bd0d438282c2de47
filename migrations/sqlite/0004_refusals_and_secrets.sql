-- Refusals in a row: a room is reported failed after three consecutive refusals, however many
-- transient failures came before.
ALTER TABLE sync_jobs ADD COLUMN refusals BIGINT NOT NULL DEFAULT 0;
-- The last failure's kind: 'transient', 'refused' or 'configuration' (the homeserver refused the
-- service's own token; such rooms are retried after a restart).
ALTER TABLE sync_jobs ADD COLUMN error_kind TEXT;

-- Secrets the service generates once and every replica shares (e.g. the credentials secret
-- when CHATROOMS_CREDENTIALS_SECRET is not set).
CREATE TABLE service_secrets (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Half-made Matrix rooms (a homeserver crash during createRoom) whose alias was freed and whose
-- chatroom got a new room: purged in the background, since a purge can wait minutes for locks
-- the crashed homeserver left behind.
CREATE TABLE retired_rooms (
    matrix_room_id TEXT PRIMARY KEY,
    retired_at BIGINT NOT NULL
);
