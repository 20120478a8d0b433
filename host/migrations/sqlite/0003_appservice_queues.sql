-- One durable delivery queue per application service: how far into the stream it has
-- acknowledged, and the one transaction in flight, whose id and events never change across
-- retries.
CREATE TABLE appservice_queues (
    appservice_id        TEXT PRIMARY KEY NOT NULL,
    position             INTEGER NOT NULL,
    next_txn_id          INTEGER NOT NULL DEFAULT 1,
    pending_txn_id       INTEGER,
    pending_last_stream  INTEGER,
    pending_body         TEXT
);
