-- Full-text search of room events (POST /search): the searchable text of each message, room
-- name and topic, keyed by the event's stream position. Kept by triggers on `events`, so every
-- write path indexes alike and a redaction takes the text out at once.
CREATE VIRTUAL TABLE event_search USING fts5(
    text,
    room_id UNINDEXED,
    key UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER event_search_insert AFTER INSERT ON events
WHEN NEW.state_key IS NULL AND NEW.type = 'm.room.message'
  OR NEW.state_key = '' AND NEW.type IN ('m.room.name', 'm.room.topic')
BEGIN
    INSERT INTO event_search (rowid, text, room_id, key)
    SELECT NEW.stream, text, NEW.room_id, key FROM (
        SELECT CASE NEW.type
                 WHEN 'm.room.message' THEN json_extract(NEW.json, '$.content.body')
                 WHEN 'm.room.name' THEN json_extract(NEW.json, '$.content.name')
                 ELSE json_extract(NEW.json, '$.content.topic')
               END AS text,
               CASE NEW.type
                 WHEN 'm.room.message' THEN 'content.body'
                 WHEN 'm.room.name' THEN 'content.name'
                 ELSE 'content.topic'
               END AS key)
    WHERE typeof(text) = 'text';
END;

CREATE TRIGGER event_search_redact AFTER UPDATE OF redacted_by ON events
WHEN NEW.redacted_by IS NOT NULL
BEGIN
    DELETE FROM event_search WHERE rowid = NEW.stream;
END;

-- What was stored before this migration.
INSERT INTO event_search (rowid, text, room_id, key)
SELECT stream, text, room_id, key FROM (
    SELECT stream, room_id, redacted_by,
           CASE type
             WHEN 'm.room.message' THEN json_extract(json, '$.content.body')
             WHEN 'm.room.name' THEN json_extract(json, '$.content.name')
             ELSE json_extract(json, '$.content.topic')
           END AS text,
           CASE type
             WHEN 'm.room.message' THEN 'content.body'
             WHEN 'm.room.name' THEN 'content.name'
             ELSE 'content.topic'
           END AS key
    FROM events
    WHERE (state_key IS NULL AND type = 'm.room.message')
       OR (state_key = '' AND type IN ('m.room.name', 'm.room.topic')))
WHERE typeof(text) = 'text' AND redacted_by IS NULL;
