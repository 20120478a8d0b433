-- Outgoing federation (service/federation/sender): each destination server's durable queue
-- on the delivery machine, of the same shape as appservice_queues. `destination` is the
-- server name. Its position is on the global stream: the PDUs and EDUs after it are still to
-- be sent. Queues start at the event that first made the server a destination, with txn ids
-- from the clock (see the sender), so that a server never sees an id again after a reset.
CREATE TABLE federation_queues (
    destination          TEXT PRIMARY KEY NOT NULL,
    position             INTEGER NOT NULL,
    next_txn_id          INTEGER NOT NULL DEFAULT 1,
    pending_txn_id       INTEGER,
    pending_last_stream  INTEGER,
    pending_body         TEXT
);

-- The memberships changed after a stream position, read as the sender looks for new
-- destinations.
CREATE INDEX memberships_by_stream ON memberships (stream);
