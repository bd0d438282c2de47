-- An end-to-end encrypted room (m.room.encryption in its initial state): chosen at creation,
-- never undone. The service cannot read its messages.
ALTER TABLE chatrooms ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 0;
