-- A message sent with an Idempotency-Key: its event, so a retry within the key's day answers
-- with it (Synapse itself remembers an appservice's transaction ids for minutes only).
ALTER TABLE idempotency_keys ADD COLUMN event_id TEXT;
