-- WASM plugins. The component and its manifest live in the plugins directory; what the
-- server decides about each installed plugin lives here. Its delivery queue is the row of
-- `appservice_queues` with the same id.
CREATE TABLE plugins (
    plugin_id     TEXT PRIMARY KEY NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 1,
    -- Whether `/_plugboard/plugins/{id}/…` reaches the plugin.
    endpoints     INTEGER NOT NULL DEFAULT 1,
    -- History replay: the queue started at `replay_from` and replays until `replay_until`,
    -- the stream head when the plugin was installed. Both NULL for a live install.
    replay_from   INTEGER,
    replay_until  INTEGER,
    installed_ts  INTEGER NOT NULL,
    updated_ts    INTEGER NOT NULL
);

-- Each plugin's durable key-value store.
CREATE TABLE plugin_kv (
    plugin_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    PRIMARY KEY (plugin_id, key)
) WITHOUT ROWID;

-- Each plugin's timers; `seq` orders timers due at the same millisecond as they were set.
CREATE TABLE plugin_timers (
    plugin_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    due_ms     INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    payload    TEXT NOT NULL,
    PRIMARY KEY (plugin_id, key)
);
CREATE INDEX plugin_timers_due ON plugin_timers (plugin_id, due_ms, seq);
