-- Resource servers (the APIs that accept Keygate tokens), the audience a
-- token was issued for, per-application token formats, and the signing
-- keys of JWT access tokens.

CREATE TABLE resource_servers (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    -- The audience: an absolute URI, fixed once created.
    identifier TEXT    NOT NULL UNIQUE,
    builtin    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
-- Identifiers differ by more than case (URN:KEYGATE:API is urn:keygate:api).
CREATE UNIQUE INDEX resource_servers_identifier ON resource_servers (lower(identifier));
INSERT INTO resource_servers (id, name, identifier, builtin, created_at)
    VALUES (1, 'Keygate API', 'urn:keygate:api', 1, 0);

-- Keygate's own scopes belong to its API; custom scopes stay unattached
-- until an administrator attaches them.
ALTER TABLE scopes ADD COLUMN resource_server_id INTEGER REFERENCES resource_servers (id);
UPDATE scopes SET resource_server_id = 1 WHERE builtin = 1;

ALTER TABLE applications ADD COLUMN token_format TEXT NOT NULL DEFAULT 'opaque'
    CHECK (token_format IN ('opaque', 'jwt'));
-- An application may introspect the tokens meant for this resource server.
ALTER TABLE applications ADD COLUMN introspects_resource_server_id INTEGER REFERENCES resource_servers (id);

-- Space-delimited identifiers of the resource servers a token is for.
ALTER TABLE tokens ADD COLUMN audience TEXT NOT NULL DEFAULT '';
-- The key that signed a JWT access token (NULL for opaque tokens).
ALTER TABLE tokens ADD COLUMN signing_key_id TEXT;
UPDATE tokens SET audience = 'urn:keygate:api' WHERE EXISTS (
    SELECT 1 FROM scopes s WHERE s.builtin = 1 AND instr(' ' || tokens.scopes || ' ', ' ' || s.name || ' ') > 0);
CREATE INDEX tokens_by_signing_key ON tokens (signing_key_id, expires_at) WHERE signing_key_id IS NOT NULL;

-- Private keys are sealed (XChaCha20-Poly1305) under the key-encryption
-- key kept outside the database (--key-file).
CREATE TABLE signing_keys (
    kid          TEXT    PRIMARY KEY,
    algorithm    TEXT    NOT NULL CHECK (algorithm IN ('ES256', 'RS256')),
    public_jwk   TEXT    NOT NULL,
    private_key  BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    -- Published from created_at; signs from signs_from on.
    signs_from   INTEGER NOT NULL
);
