-- The room's pinned messages as last seen on the homeserver (a JSON array of event ids):
-- pins are written there directly, by the API or by staff in a Matrix client, and this copy
-- is refreshed whenever a sync reads the room, so room responses need no homeserver call.
ALTER TABLE chatrooms ADD COLUMN pinned_events TEXT;
