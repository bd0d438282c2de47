-- Bans and mutes of a room's users. A ban is in force while lifted_at is null; a lifted ban
-- (expired or lifted through the API) stays until a sync has unbanned the user on the
-- homeserver, so a user who holds no role is unbanned too.
CREATE TABLE room_bans (
    chatroom_id BIGINT NOT NULL REFERENCES chatrooms (id) ON DELETE CASCADE,
    app_user_id BIGINT NOT NULL,
    reason TEXT,
    -- Who banned: 'backend' or 'user:<app user id>', and their rank then (3 the backend or an
    -- organization admin, 2 a room admin, 1 a room moderator): only as high a rank lifts it.
    actor TEXT NOT NULL,
    actor_rank BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Unix milliseconds; null: until lifted.
    expires_at BIGINT,
    lifted_at BIGINT,
    PRIMARY KEY (chatroom_id, app_user_id)
);
CREATE INDEX room_bans_expiry ON room_bans (expires_at) WHERE expires_at IS NOT NULL AND lifted_at IS NULL;

-- A muted user reads but cannot post (power level -1); the row goes when the mute ends.
CREATE TABLE room_mutes (
    chatroom_id BIGINT NOT NULL REFERENCES chatrooms (id) ON DELETE CASCADE,
    app_user_id BIGINT NOT NULL,
    actor TEXT NOT NULL,
    actor_rank BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (chatroom_id, app_user_id)
);
CREATE INDEX room_mutes_expiry ON room_mutes (expires_at) WHERE expires_at IS NOT NULL;
