-- Reports of content by users (the client-server API's report endpoints), kept until an
-- admin dismisses them. `kind` says what was reported: an event (room_id, event_id, and its
-- sender in user_id), a room (room_id) or a user (user_id). A reason is at most a few
-- kilobytes, a reporter has at most so many reports waiting for an admin (service/reports.rs),
-- and reports are rate limited per user and per address, so that one user cannot fill the
-- disk with them.
CREATE TABLE reports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL CHECK (kind IN ('event', 'room', 'user')),
    reporter     TEXT NOT NULL,
    room_id      TEXT,
    event_id     TEXT,
    user_id      TEXT,
    reason       TEXT,
    received_ts  INTEGER NOT NULL
);

-- The reports one user has waiting, counted at every new report.
CREATE INDEX reports_by_reporter ON reports (reporter);
