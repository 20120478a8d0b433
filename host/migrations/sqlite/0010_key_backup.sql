-- Server-side key backups (the client-server API's /room_keys): each user's backup versions,
-- and the encrypted room keys stored in them. The server never reads a key: `auth_data` and
-- `session_data` are the client's JSON, kept as sent. A deleted version keeps its row (its
-- number is never given again) and loses its keys.
CREATE TABLE backup_versions (
    user_id    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    algorithm  TEXT NOT NULL,
    auth_data  TEXT NOT NULL,
    -- Taken up by one at every change of the version's keys: the `etag` clients compare.
    etag       INTEGER NOT NULL DEFAULT 0,
    deleted    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE backup_keys (
    user_id              TEXT NOT NULL,
    version              INTEGER NOT NULL,
    room_id              TEXT NOT NULL,
    session_id           TEXT NOT NULL,
    first_message_index  INTEGER NOT NULL,
    forwarded_count      INTEGER NOT NULL,
    is_verified          INTEGER NOT NULL,
    session_data         TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
