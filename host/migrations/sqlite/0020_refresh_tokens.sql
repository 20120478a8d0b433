-- Refresh tokens (issue 15 §3): a session made with `refresh_token: true` has an access token
-- that expires and a refresh token that trades it, once, for a new pair. Sessions made without
-- keep NULL in both columns and never expire.
ALTER TABLE access_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE access_tokens ADD COLUMN refresh_token TEXT;
CREATE UNIQUE INDEX access_tokens_by_refresh_token ON access_tokens (refresh_token)
    WHERE refresh_token IS NOT NULL;
