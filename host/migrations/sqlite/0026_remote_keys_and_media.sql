-- Other servers' users' device lists as their servers last answered /user/keys/query:
-- `{"device_keys": {...}, "master_key": ..., "self_signing_key": ...}`. Kept only for users
-- sharing a room with a local user (their server then tells this one of changes with
-- m.device_list_update / m.signing_key_update, which delete the row).
CREATE TABLE remote_device_lists (
    user_id     TEXT PRIMARY KEY NOT NULL,
    json        TEXT NOT NULL,
    fetched_ts  INTEGER NOT NULL
);

-- Media of other servers fetched for local clients; the bytes live in files under
-- data_dir/media/remote/<server>/<media id>.
CREATE TABLE remote_media (
    server_name   TEXT NOT NULL,
    media_id      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    filename      TEXT,
    size          INTEGER NOT NULL,
    fetched_ts    INTEGER NOT NULL,
    PRIMARY KEY (server_name, media_id)
);
