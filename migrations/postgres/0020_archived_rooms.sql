-- An archived room keeps its members and history; nobody but the bot posts or changes state.
-- Unix milliseconds; null: not archived.
ALTER TABLE chatrooms ADD COLUMN archived_at BIGINT;
