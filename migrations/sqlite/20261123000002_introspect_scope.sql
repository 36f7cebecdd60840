-- Applications allowed this scope may introspect the tokens of every
-- application (resource servers); others introspect only their own tokens.
INSERT INTO scopes (name, description, builtin, created_at) VALUES
    ('introspect', 'Introspect the tokens of every application (for resource servers)', 1, 0);
