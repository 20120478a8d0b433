-- End-to-end encryption keys and to-device messages. The server never reads a key: the JSON
-- columns are the client's objects, kept as sent (with signatures added by later uploads).

-- Each device's identity keys (`DeviceKeys`), one row per device.
CREATE TABLE device_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    json       TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One-time keys: each is handed out once by /keys/claim and deleted.
CREATE TABLE one_time_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    json       TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- One fallback key per device and algorithm: claimed when the one-time keys run out, marked
-- used but kept until the device uploads the next.
CREATE TABLE fallback_keys (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    json       TEXT NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- Cross-signing keys: `master`, `self_signing`, `user_signing`, one of each per user.
CREATE TABLE cross_signing_keys (
    user_id  TEXT NOT NULL,
    kind     TEXT NOT NULL,
    json     TEXT NOT NULL,
    PRIMARY KEY (user_id, kind)
);

-- Where in the stream a user's device list or cross-signing keys changed: what
-- `device_lists.changed` and /keys/changes read.
CREATE TABLE key_changes (
    stream   INTEGER PRIMARY KEY NOT NULL,
    user_id  TEXT NOT NULL
);

-- To-device messages waiting for their device, in stream order; deleted once the device syncs
-- with a `since` past them.
CREATE TABLE to_device (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    stream     INTEGER NOT NULL,
    sender     TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream)
);
CREATE INDEX to_device_by_stream ON to_device (stream);

-- The transaction ids of to-device sends, per sending device: a retried send is not queued
-- twice. Kept with their stream position, which outlives the delivered messages, so that a
-- restart never hands out a position again.
CREATE TABLE to_device_txns (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    stream     INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- Memberships of a room that changed after a position: whom `device_lists` reports as newly
-- sharing a room, or as having left it.
CREATE INDEX memberships_by_room_stream ON memberships (room_id, stream);
