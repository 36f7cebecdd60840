-- Keygate initial schema. Times are Unix seconds (UTC). Secrets and tokens
-- are stored only as SHA-256 digests.

CREATE TABLE administrators (
    id              INTEGER PRIMARY KEY,
    username        TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash   TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at      INTEGER NOT NULL,
    last_sign_in_at INTEGER
);

CREATE TABLE scopes (
    name        TEXT    PRIMARY KEY,
    description TEXT    NOT NULL,
    builtin     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

INSERT INTO scopes (name, description, builtin, created_at) VALUES
    ('applications:read',  'Read API applications and their settings', 1, 0),
    ('applications:write', 'Create, change, delete applications and regenerate secrets', 1, 0),
    ('tokens:read',        'List the tokens of applications', 1, 0),
    ('tokens:write',       'Mint and revoke tokens', 1, 0),
    ('audit:read',         'Read the audit log', 1, 0);

CREATE TABLE applications (
    id                    INTEGER PRIMARY KEY,
    name                  TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    notes                 TEXT    NOT NULL DEFAULT '',
    client_id             TEXT    NOT NULL UNIQUE,
    secret_hash           BLOB    NOT NULL,
    -- space-delimited, canonical (sorted) scope list
    scopes                TEXT    NOT NULL DEFAULT '',
    enabled               INTEGER NOT NULL DEFAULT 1,
    token_ttl_seconds     INTEGER NOT NULL,
    max_tokens            INTEGER NOT NULL,
    rate_per_second       INTEGER NOT NULL,
    rate_per_hour         INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    secret_regenerated_at INTEGER
);

CREATE TABLE tokens (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    token_hash     BLOB    NOT NULL UNIQUE,
    display_prefix TEXT    NOT NULL,
    name           TEXT,
    scopes         TEXT    NOT NULL DEFAULT '',
    source         TEXT    NOT NULL CHECK (source IN ('token_endpoint', 'console', 'api')),
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    last_used_at   INTEGER,
    last_used_ip   TEXT,
    revoked_at     INTEGER,
    revoked_reason TEXT
);

-- The cap query: valid endpoint tokens of one application, newest first.
CREATE INDEX tokens_by_application ON tokens (application_id, source, revoked_at, expires_at);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_kind  TEXT    NOT NULL CHECK (actor_kind IN ('administrator', 'application', 'anonymous', 'system')),
    actor_id    INTEGER,
    actor_name  TEXT,
    action      TEXT    NOT NULL,
    target_kind TEXT,
    target_id   INTEGER,
    target_name TEXT,
    application_id INTEGER,
    client_ip   TEXT,
    details     TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_application ON audit_events (application_id, at);
CREATE INDEX audit_events_action ON audit_events (action, at);
