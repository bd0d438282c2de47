-- Chatrooms as the backend wants them; the homeserver is made to match.
CREATE TABLE chatrooms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('default', 'event', 'custom')),
    organization_id BIGINT NOT NULL,
    event_id BIGINT,
    name TEXT NOT NULL,
    avatar_url TEXT,
    -- Booleans are 0/1 integers: sqlx's Any driver cannot decode SQLite booleans.
    automation_enabled BIGINT NOT NULL,
    scheduled_deletion BIGINT,
    matrix_room_id TEXT,
    -- Localpart of the room's alias: createRoom with it is idempotent across crashes.
    matrix_alias TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- Set when the room is to be deleted; the row goes once the homeserver purged the room.
    deleted_at BIGINT
);
CREATE UNIQUE INDEX chatrooms_one_default_per_organization
    ON chatrooms (organization_id) WHERE kind = 'default' AND deleted_at IS NULL;
CREATE UNIQUE INDEX chatrooms_one_per_event
    ON chatrooms (organization_id, event_id) WHERE kind = 'event' AND deleted_at IS NULL;
CREATE INDEX chatrooms_by_organization ON chatrooms (organization_id, id);
CREATE INDEX chatrooms_scheduled_deletion
    ON chatrooms (scheduled_deletion) WHERE scheduled_deletion IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE chatroom_members (
    chatroom_id BIGINT NOT NULL REFERENCES chatrooms (id) ON DELETE CASCADE,
    app_user_id BIGINT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'moderator', 'assigned')),
    PRIMARY KEY (chatroom_id, app_user_id)
);
CREATE INDEX chatroom_members_by_user ON chatroom_members (app_user_id);

-- The outbox: one row per room whose homeserver state has to catch up with the database.
CREATE TABLE sync_jobs (
    chatroom_id BIGINT PRIMARY KEY REFERENCES chatrooms (id) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    last_error TEXT,
    failed BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sync_jobs_due ON sync_jobs (next_attempt_at);

-- App users whose Matrix account is known to exist.
CREATE TABLE matrix_accounts (
    app_user_id BIGINT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
