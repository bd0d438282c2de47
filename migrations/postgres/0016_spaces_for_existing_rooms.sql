-- Organizations whose rooms predate spaces get theirs at once: a space job each.
INSERT INTO space_jobs (organization_id, version, attempts, next_attempt_at, failed, reason, queued_at)
SELECT DISTINCT organization_id, 1, 0, 0, 0, 'change', 0 FROM chatrooms WHERE deleted_at IS NULL
ON CONFLICT (organization_id) DO NOTHING;
