-- The room's pinned messages as last seen on the homeserver (a JSON array of event ids):
-- pins are written there directly, by the API or by staff in a Matrix client, and this copy
-- is refreshed whenever a sync reads the room, so room responses need no homeserver call.
ALTER TABLE chatrooms ADD COLUMN pinned_events TEXT;

-- History truncations started here: Synapse's purge ids are not tied to a room in its status
-- API, so a room's admins may only poll their own room's.
CREATE TABLE room_truncations (
    purge_id TEXT PRIMARY KEY,
    chatroom_id BIGINT NOT NULL REFERENCES chatrooms (id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL
);
