-- OpenID tokens (POST /user/{userId}/openid/request_token): a user proves who they are to a
-- third party (an integration manager, a widget), which asks this server's federation
-- endpoint /openid/userinfo. Each token lasts an hour; expired rows go at the next request.
CREATE TABLE openid_tokens (
    token       TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    expires_ts  INTEGER NOT NULL
);

CREATE INDEX openid_tokens_by_expiry ON openid_tokens (expires_ts);
