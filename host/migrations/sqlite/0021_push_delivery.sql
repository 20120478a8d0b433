-- Push delivery (service/push/delivery.rs): each http pusher's durable queue on the delivery
-- machine, of the same shape as appservice_queues. `pusher` names it: the JSON array
-- [user_id, app_id, pushkey], the pusher's key. Its position is on the event stream: the
-- notifications after it are still to be pushed.
CREATE TABLE pusher_queues (
    pusher               TEXT PRIMARY KEY NOT NULL,
    position             INTEGER NOT NULL,
    next_txn_id          INTEGER NOT NULL DEFAULT 1,
    pending_txn_id       INTEGER,
    pending_last_stream  INTEGER,
    pending_body         TEXT
);

-- The device whose access token set the pusher: deleting the device (or logging it out)
-- removes its pushers. NULL for pushers set before this column, or by an application service
-- acting without a device.
ALTER TABLE pushers ADD COLUMN device_id TEXT;
