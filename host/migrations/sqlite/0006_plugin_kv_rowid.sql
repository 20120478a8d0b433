-- The plugins' key-value store as a rowid table. In a WITHOUT ROWID table each row lives in
-- the primary key's b-tree, and SQLite compares a searched key against a whole row when the
-- row overflows its page: every lookup or write near large values (an index's segments, a
-- MIDI log's chunks) read those values in full at each step of the search. Here the unique
-- index holds only (plugin_id, key, rowid) and the value is read when it is asked for.
CREATE TABLE plugin_kv_rows (
    plugin_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    UNIQUE (plugin_id, key)
);
INSERT INTO plugin_kv_rows (plugin_id, key, value) SELECT plugin_id, key, value FROM plugin_kv;
DROP TABLE plugin_kv;
ALTER TABLE plugin_kv_rows RENAME TO plugin_kv;
