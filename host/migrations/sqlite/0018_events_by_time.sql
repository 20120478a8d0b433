-- Finding a room's event nearest a point in time (/timestamp_to_event).
CREATE INDEX events_by_time ON events (room_id, origin_server_ts);
