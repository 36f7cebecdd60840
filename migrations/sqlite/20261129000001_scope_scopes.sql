-- The scope catalogue through the API: /api/v1/scopes.
INSERT INTO scopes (name, description, builtin, created_at) VALUES
    ('scopes:read',  'Read the scope catalogue', 1, 0),
    ('scopes:write', 'Add and delete scopes in the catalogue', 1, 0);
