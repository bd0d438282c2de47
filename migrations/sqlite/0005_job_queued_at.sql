-- When the room started waiting: kept while further changes pile onto the same job, so the
-- backlog gauge tells how long the oldest room has been out of step.
ALTER TABLE sync_jobs ADD COLUMN queued_at BIGINT NOT NULL DEFAULT 0;
UPDATE sync_jobs SET queued_at = next_attempt_at;
