-- Application services registered while the server runs (the admin API, `plugboard appservice
-- add`, the talk's `POST /_matrix/appservice/v1/register`): the registration text exactly as
-- accepted, loaded again at every start together with `appservice_config_files`. Their
-- delivery queues are the rows of `appservice_queues` with the same id.
CREATE TABLE appservice_registrations (
    appservice_id  TEXT PRIMARY KEY NOT NULL,
    yaml           TEXT NOT NULL,
    added_ts       INTEGER NOT NULL,
    updated_ts     INTEGER NOT NULL
);
