-- Who revoked a token (an administrator's or application's name, "the
-- CLI"), shown beside "revoked 3 minutes ago"; NULL for the system (the
-- token cap) and for tokens revoked before this column.
ALTER TABLE tokens ADD COLUMN revoked_by TEXT;
