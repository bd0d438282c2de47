-- A user's rooms include those they are banned from: found by user, not by room.
CREATE INDEX room_bans_by_user ON room_bans (app_user_id) WHERE lifted_at IS NULL;
