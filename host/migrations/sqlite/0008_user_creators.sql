-- Who made each account: the application service or plugin (by its id) that registered it
-- with its as_token or the plugin's register-user, or for which the server made it (its
-- sender, made when first needed). NULL for an account a person registered or an admin made.
-- A registration or plugin manifest whose sender or exclusive users namespace covers accounts
-- it did not make would act as them; it is refused unless the admin allows it.
ALTER TABLE users ADD COLUMN appservice_id TEXT;

-- The accounts that existed before `appservice_id`: who made them is worked out once, at the
-- next start, from the services registered then (service/appservice/takeover.rs), and each
-- row goes once it is.
CREATE TABLE users_maker_unknown (
    user_id  TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;
INSERT INTO users_maker_unknown (user_id) SELECT user_id FROM users;
