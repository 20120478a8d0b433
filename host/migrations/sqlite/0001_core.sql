-- The homeserver core: accounts, rooms and their events, per-user data, media.

CREATE TABLE users (
    user_id        TEXT PRIMARY KEY NOT NULL,
    password_hash  TEXT,
    is_admin       INTEGER NOT NULL DEFAULT 0,
    displayname    TEXT,
    avatar_url     TEXT,
    created_ts     INTEGER NOT NULL
);

CREATE TABLE devices (
    user_id       TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    display_name  TEXT,
    last_seen_ts  INTEGER,
    last_seen_ip  TEXT,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE access_tokens (
    token      TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL
);
CREATE INDEX access_tokens_by_device ON access_tokens (user_id, device_id);

CREATE TABLE rooms (
    room_id       TEXT PRIMARY KEY NOT NULL,
    room_version  TEXT NOT NULL,
    creator       TEXT NOT NULL,
    is_public     INTEGER NOT NULL DEFAULT 0,
    created_ts    INTEGER NOT NULL
);

-- `stream` is the one global order that /sync, /messages and (later) appservice queues
-- read; account data and receipts take their positions from the same counter.
CREATE TABLE events (
    stream            INTEGER PRIMARY KEY NOT NULL,
    event_id          TEXT NOT NULL UNIQUE,
    room_id           TEXT NOT NULL,
    sender            TEXT NOT NULL,
    type              TEXT NOT NULL,
    state_key         TEXT,
    depth             INTEGER NOT NULL,
    origin_server_ts  INTEGER NOT NULL,
    json              TEXT NOT NULL,
    redacted_by       TEXT,
    txn_device        TEXT,
    txn_id            TEXT
);
CREATE INDEX events_by_room ON events (room_id, stream);

CREATE TABLE room_state (
    room_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    state_key  TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    stream     INTEGER NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

CREATE TABLE memberships (
    room_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    membership  TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    stream      INTEGER NOT NULL,
    forgotten   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id, membership);

CREATE TABLE txn_ids (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, scope, txn_id)
);

CREATE TABLE room_aliases (
    alias    TEXT PRIMARY KEY NOT NULL,
    room_id  TEXT NOT NULL,
    creator  TEXT NOT NULL
);
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);

-- room_id is '' for global account data.
CREATE TABLE account_data (
    user_id  TEXT NOT NULL,
    room_id  TEXT NOT NULL,
    type     TEXT NOT NULL,
    content  TEXT NOT NULL,
    stream   INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_by_stream ON account_data (user_id, stream);

-- thread_id is '' for unthreaded receipts.
CREATE TABLE receipts (
    room_id       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    receipt_type  TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    ts            INTEGER NOT NULL,
    stream        INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_by_stream ON receipts (room_id, stream);

CREATE TABLE filters (
    user_id    TEXT NOT NULL,
    filter_id  INTEGER NOT NULL,
    json       TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE media (
    media_id      TEXT PRIMARY KEY NOT NULL,
    content_type  TEXT NOT NULL,
    filename      TEXT,
    size          INTEGER NOT NULL,
    uploader      TEXT NOT NULL,
    created_ts    INTEGER NOT NULL
);
