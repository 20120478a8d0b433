-- A member event of one of our users in a room this server is not in (an invite from another
-- server, or its refusal) keeps the stream position it was stored at, so that application
-- services and plugins read it in stream order as they read timeline events.
ALTER TABLE side_events ADD COLUMN stream INTEGER;
CREATE INDEX side_events_by_stream ON side_events (stream) WHERE stream IS NOT NULL;
