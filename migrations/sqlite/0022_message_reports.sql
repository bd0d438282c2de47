-- Reports of messages: by app users through the API, or by anyone in a Matrix client (read
-- from the homeserver's admin API), and how a moderator resolved them.
CREATE TABLE message_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chatroom_id BIGINT NOT NULL REFERENCES chatrooms (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    -- The message's sender (Matrix id).
    sender TEXT NOT NULL,
    -- Who reported it: their Matrix id, and their app user id when they are one.
    reporter TEXT NOT NULL,
    reporter_user_id BIGINT,
    reason TEXT,
    -- 'api' or 'homeserver'.
    source TEXT NOT NULL,
    -- The homeserver's own report, deleted there once this one is resolved.
    homeserver_report_id BIGINT UNIQUE,
    homeserver_closed INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    resolved_at BIGINT,
    -- `backend` or `user:<id>`.
    resolved_by TEXT,
    -- dismiss, redact, mute or ban.
    action TEXT,
    note TEXT
);
CREATE INDEX message_reports_by_room ON message_reports (chatroom_id, id);
CREATE INDEX message_reports_by_reporter ON message_reports (reporter_user_id, id);
-- One open report per reporter and message.
CREATE UNIQUE INDEX message_reports_open_once ON message_reports (chatroom_id, event_id, reporter)
    WHERE resolved_at IS NULL;

-- How far the service has read a homeserver feed (the event reports' highest id).
CREATE TABLE homeserver_cursors (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
