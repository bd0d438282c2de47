-- Room settings: the topic (m.room.topic), read-only (events_default 50 on the homeserver) and a
-- cap on the users the three role lists may hold (enforced here; Matrix has no such limit).
ALTER TABLE chatrooms ADD COLUMN topic TEXT;
ALTER TABLE chatrooms ADD COLUMN read_only BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chatrooms ADD COLUMN max_users BIGINT;
-- Rooms made with copyFrom share their template's avatar: a purge keeps media still shown.
CREATE INDEX chatrooms_by_avatar ON chatrooms (avatar_url) WHERE avatar_url IS NOT NULL;
