-- A deactivated account (POST /account/deactivate): it keeps its row, so its id is never
-- given to anyone else, but it can no longer log in.
ALTER TABLE users ADD COLUMN deactivated INTEGER NOT NULL DEFAULT 0;
