-- Events the homeserver pushes name the Matrix room: find its chatroom without a scan.
CREATE INDEX chatrooms_by_matrix_room ON chatrooms (matrix_room_id) WHERE matrix_room_id IS NOT NULL;
