-- How far a room's running sync is with its members: of the users its lists want joined, how
-- many are (a 202 for a large change shows it). Null until a sync with joins to make plans.
ALTER TABLE sync_jobs ADD COLUMN members_listed BIGINT;
ALTER TABLE sync_jobs ADD COLUMN members_joined BIGINT;
