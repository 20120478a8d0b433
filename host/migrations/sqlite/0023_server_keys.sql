-- Other servers' signing keys, fetched directly or through a notary. A key of `verify_keys`
-- is usable until valid_until_ts; one of `old_verify_keys` has expired_ts set (and
-- valid_until_ts equal to it). `response` is the signed key response the key came in, kept to
-- be served again when this server answers as a notary.
CREATE TABLE server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key TEXT NOT NULL,
    valid_until_ts INTEGER NOT NULL,
    expired_ts INTEGER,
    response TEXT NOT NULL,
    fetched_ts INTEGER NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
