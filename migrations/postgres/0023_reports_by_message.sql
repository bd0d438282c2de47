-- A report made in a Matrix client is stored even when its reporter has an open report of the
-- same message through the API (the homeserver's copy must be closed with the rest): the one
-- open report per reporter and message holds for the API's reports only.
DROP INDEX message_reports_open_once;
CREATE UNIQUE INDEX message_reports_open_once ON message_reports (chatroom_id, event_id, reporter)
    WHERE resolved_at IS NULL AND source = 'api';
-- The queue shows a message's reports together.
CREATE INDEX message_reports_by_message ON message_reports (chatroom_id, event_id, id);
