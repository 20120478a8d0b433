-- Presence (PUT /presence/{userId}/status, /sync's set_presence): each user's last state,
-- status message and when they were last active; `stream` is the position of the last
-- change, which /sync reads changes by.
CREATE TABLE presence (
    user_id         TEXT PRIMARY KEY NOT NULL,
    presence        TEXT NOT NULL,
    status_msg      TEXT,
    last_active_ts  INTEGER NOT NULL,
    stream          INTEGER NOT NULL
);
CREATE INDEX presence_by_stream ON presence (stream);
