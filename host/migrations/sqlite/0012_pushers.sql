-- Pushers (POST /pushers/set): where a user's phone or other device wants its notifications
-- pushed, through its app's push gateway. One per (user, app_id, pushkey); `data` is the
-- client's JSON (the gateway `url`, `format` and anything the app passes to its gateway).
CREATE TABLE pushers (
    user_id              TEXT NOT NULL,
    app_id               TEXT NOT NULL,
    pushkey              TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    app_display_name     TEXT NOT NULL,
    device_display_name  TEXT NOT NULL,
    profile_tag          TEXT,
    lang                 TEXT NOT NULL,
    data                 TEXT NOT NULL,
    created_ts           INTEGER NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey)
);

-- Another user's pusher of the same app and pushkey is removed when one is set without
-- `append` (a phone that changed hands).
CREATE INDEX pushers_by_key ON pushers (app_id, pushkey);
