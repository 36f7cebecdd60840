-- State the console and the throttles keep in the database, so that every
-- instance on one database sees the same (and a restart forgets nothing).

-- Console sessions, found by the SHA-256 digest of their ID: the ID itself
-- lives only in the browser's cookie. Replaces tower-sessions' own table
-- (signed-in administrators sign in once more after the upgrade).
DROP TABLE IF EXISTS tower_sessions.session;
CREATE TABLE console_sessions (
    id_digest  BYTEA  PRIMARY KEY,
    -- The signed-in administrator, so their sessions can be ended.
    admin_id   BIGINT,
    data       TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
CREATE INDEX console_sessions_admin_id ON console_sessions (admin_id);

-- A secret or token waiting to be shown once, sealed (AEAD) under a key
-- derived from the session ID, which the database never holds.
CREATE TABLE console_flashes (
    id_digest      BYTEA  PRIMARY KEY,
    application_id BIGINT NOT NULL,
    sealed         BYTEA  NOT NULL,
    created_at     BIGINT NOT NULL
);

-- Digests of the one-time setup codes printed while no administrator
-- exists; each is valid for a day.
CREATE TABLE setup_codes (
    code_digest BYTEA  PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- Keys the instances share, made once by whichever instance needs one first.
CREATE TABLE server_keys (
    name       TEXT   PRIMARY KEY,
    value      BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);

-- Failed sign-ins per key (username and address, or address). An attempt
-- counts as failed from the moment it is admitted until it succeeds.
CREATE TABLE sign_in_failures (
    key      TEXT   PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_at  BIGINT NOT NULL
);

-- Failed client authentications per key in the current minute. Unlogged:
-- a crash may forget a minute's count, nothing else.
CREATE UNLOGGED TABLE client_auth_failures (
    key      TEXT   PRIMARY KEY,
    minute   BIGINT NOT NULL,
    failures BIGINT NOT NULL
);
