-- A random value per administrator that their console sessions carry: a
-- session counts only while it matches, so a password reset (which draws
-- a new one) ends every session at once, and an administrator added later
-- never inherits an old session.
ALTER TABLE administrators ADD COLUMN session_binding TEXT NOT NULL DEFAULT '';
UPDATE administrators SET session_binding = md5(random()::text || clock_timestamp()::text || id::text);
