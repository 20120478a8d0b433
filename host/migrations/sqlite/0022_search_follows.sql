-- The search index follows the events table instead of being written with each event: a
-- trigger on every insert cost the send path a segment of FTS5's index per group commit.
-- `search_indexed.upto` is the stream position up to which `event_search` holds every event;
-- storage/search.rs indexes what lies beyond it, in batches, and before every search.
DROP TRIGGER event_search_insert;

CREATE TABLE search_indexed (
    upto INTEGER NOT NULL
);

-- The trigger indexed everything stored so far.
INSERT INTO search_indexed (upto) SELECT COALESCE(MAX(stream), 0) FROM events;
