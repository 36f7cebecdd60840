-- A password someone else chose (an owner's `admin add` or reset, or the
-- CLI's) must be changed at the next sign-in before anything else.
ALTER TABLE administrators ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;
