-- Relations between events (`content.m.relates_to`): edits, threads, references, annotations.
-- Read from each event's JSON as virtual columns, so no write path changes and events stored
-- before this migration are covered; the partial indexes hold only the events that relate.
ALTER TABLE events ADD COLUMN relates_to TEXT
    GENERATED ALWAYS AS (json_extract(json, '$.content."m.relates_to".event_id')) VIRTUAL;
ALTER TABLE events ADD COLUMN rel_type TEXT
    GENERATED ALWAYS AS (json_extract(json, '$.content."m.relates_to".rel_type')) VIRTUAL;

-- The children of an event (/relations, the aggregations in `unsigned.m.relations`).
CREATE INDEX events_by_relation ON events (relates_to, stream) WHERE relates_to IS NOT NULL;
-- A room's threads, by their latest reply (/threads).
CREATE INDEX events_by_thread ON events (room_id, rel_type, stream) WHERE rel_type IS NOT NULL;
