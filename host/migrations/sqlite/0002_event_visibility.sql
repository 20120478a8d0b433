-- The history visibility in force when each event was sent: the spec decides who may read an
-- event by the visibility at that event, not the room's current one. NULL (events stored
-- before this column) reads as the default, "shared".
ALTER TABLE events ADD COLUMN history_visibility TEXT;
