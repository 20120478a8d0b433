-- Push rule outcomes (service/push/evaluate.rs): one row per event that notifies someone, with
-- the actions of every local member but those in event_push_exceptions, whose own rules (or
-- the event naming them) gave other actions. Counts and /notifications read them after a
-- member's read receipt; the sender is never counted. thread_id is '' for the main timeline.
CREATE TABLE event_push (
    room_id    TEXT NOT NULL,
    stream     INTEGER NOT NULL,
    event_id   TEXT NOT NULL,
    sender     TEXT NOT NULL,
    thread_id  TEXT NOT NULL,
    notify     INTEGER NOT NULL,
    highlight  INTEGER NOT NULL,
    actions    TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    PRIMARY KEY (room_id, stream)
) WITHOUT ROWID;

CREATE TABLE event_push_exceptions (
    room_id    TEXT NOT NULL,
    stream     INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    notify     INTEGER NOT NULL,
    highlight  INTEGER NOT NULL,
    actions    TEXT NOT NULL,
    PRIMARY KEY (room_id, stream, user_id)
) WITHOUT ROWID;
