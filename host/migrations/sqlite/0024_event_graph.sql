-- The room as a graph, for federation: where each room's graph ends (its forward
-- extremities), the state after each event (state groups, stored as deltas), and the events
-- received from other servers that are not in the timeline.

-- The events of a room that no other event of it names in prev_events yet: a new event names
-- them all. Until now every room was a line, ending in its newest event.
CREATE TABLE room_extremities (
    room_id   TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);
INSERT INTO room_extremities (room_id, event_id)
    SELECT e.room_id, e.event_id FROM events e
    WHERE e.stream = (SELECT MAX(stream) FROM events WHERE room_id = e.room_id);

-- A state group is a state of a room: the entries of a group with a parent are its changes
-- over the parent's state (a key is never removed from a room's state), and a group without
-- one holds the whole state. `chain` counts the parents above it, which the writer keeps short
-- by starting a whole state again now and then.
CREATE TABLE state_groups (
    id       INTEGER PRIMARY KEY NOT NULL,
    room_id  TEXT NOT NULL,
    parent   INTEGER,
    chain    INTEGER NOT NULL
);
CREATE TABLE state_group_entries (
    group_id   INTEGER NOT NULL,
    type       TEXT NOT NULL,
    state_key  TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    PRIMARY KEY (group_id, type, state_key)
);

-- The state after each event. NULL for the events stored before this migration: their rooms
-- were lines, so the state after one of them is the newest state event of each key up to it.
ALTER TABLE events ADD COLUMN state_group INTEGER;

-- Each existing room's current state becomes a whole group, the state after its newest event.
INSERT INTO state_groups (id, room_id, parent, chain)
    SELECT ROW_NUMBER() OVER (ORDER BY room_id), room_id, NULL, 0 FROM rooms;
INSERT INTO state_group_entries (group_id, type, state_key, event_id)
    SELECT g.id, s.type, s.state_key, s.event_id
    FROM room_state s JOIN state_groups g ON g.room_id = s.room_id;
UPDATE events SET state_group = (SELECT g.id FROM state_groups g WHERE g.room_id = events.room_id)
    WHERE event_id IN (SELECT event_id FROM room_extremities);

-- Events of other servers that are not in the timeline: `outlier` (an auth or state event
-- fetched to check others, accepted), `soft_failed` (accepted by the graph but not by the
-- room's current state: never shown, but later events may build on it) and `rejected` (failed
-- the checks: kept so that it is not fetched and checked again, never served as accepted).
CREATE TABLE side_events (
    event_id     TEXT PRIMARY KEY NOT NULL,
    room_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    json         TEXT NOT NULL,
    state_group  INTEGER,
    received_ts  INTEGER NOT NULL
);
CREATE INDEX side_events_by_room ON side_events (room_id, status);

-- The group of each room's current state (which, once forks merge, is no event's state after).
ALTER TABLE rooms ADD COLUMN state_group INTEGER;
UPDATE rooms SET state_group = (SELECT g.id FROM state_groups g WHERE g.room_id = rooms.room_id);
