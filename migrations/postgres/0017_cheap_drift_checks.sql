-- When the service last read a room (or space) back from the homeserver and left it in step.
-- The periodic pass reads the longest-unchecked first, and skips those checked while the
-- homeserver's pushes were known to reach the service (a foreign change would have queued a
-- recheck at once).
ALTER TABLE chatrooms ADD COLUMN checked_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organizations ADD COLUMN checked_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX chatrooms_by_check ON chatrooms (checked_at, id)
    WHERE matrix_room_id IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX organizations_by_check ON organizations (checked_at, id) WHERE matrix_space_id IS NOT NULL;

-- Since when the homeserver's appservice ping has succeeded at every pass: its pushes reach
-- the service. No row while that is not known.
CREATE TABLE intake_proof (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    since BIGINT NOT NULL
);
