-- Secrets with an overlap, per-secret and per-token address history,
-- network allowlists, webhooks with a delivery queue, and lifecycle alerts.

-- Every live secret of an application: the current one (expires_at NULL)
-- and at most one previous one kept for an overlap until expires_at.
-- AUTOINCREMENT here and below: an id is never reused, so a use recorded
-- for a deleted secret (or an attempt for a deleted delivery) can never
-- land on a new one.
CREATE TABLE client_secrets (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    secret_hash    BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    last_used_at   INTEGER,
    last_used_ip   TEXT
);
CREATE INDEX client_secrets_by_application ON client_secrets (application_id, expires_at);
INSERT INTO client_secrets (application_id, secret_hash, created_at)
    SELECT id, secret_hash, COALESCE(secret_regenerated_at, created_at) FROM applications;
ALTER TABLE applications DROP COLUMN secret_hash;

-- The last few distinct addresses a token or a secret was used from.
CREATE TABLE token_addresses (
    token_id     INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    ip           TEXT    NOT NULL,
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (token_id, ip)
);
CREATE TABLE secret_addresses (
    secret_id    INTEGER NOT NULL REFERENCES client_secrets (id) ON DELETE CASCADE,
    ip           TEXT    NOT NULL,
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (secret_id, ip)
);

-- Space-delimited CIDR networks; empty means anywhere.
ALTER TABLE applications ADD COLUMN allowed_networks TEXT NOT NULL DEFAULT '';

INSERT INTO scopes (name, description, builtin, created_at, resource_server_id) VALUES
    ('webhooks:read', 'Read webhooks and their delivery logs', 1, 0, 1),
    ('webhooks:write', 'Add, change, remove and test webhooks', 1, 0, 1);

CREATE TABLE webhooks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    url           TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    -- Space-delimited audit actions, families and alerts.
    events        TEXT    NOT NULL,
    -- The signing secret, sealed under the key-encryption key.
    secret_sealed BLOB    NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id      TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    -- A sender working on it until then (several instances send each once).
    claimed_until   INTEGER,
    finished_at     INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at               INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    -- The HTTP status, or NULL with the reason there was no answer.
    status           INTEGER,
    error            TEXT,
    response_excerpt TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id);

-- Each alert fires once per thing and threshold.
CREATE TABLE alerts_fired (
    kind       TEXT    NOT NULL,
    subject_id INTEGER NOT NULL,
    threshold  TEXT    NOT NULL,
    fired_at   INTEGER NOT NULL,
    PRIMARY KEY (kind, subject_id, threshold)
);
