-- The latest use of an application's credentials that were deleted (a
-- secret dropped by a regeneration or at the end of its overlap): the
-- application's last use counts them, so regenerating the secret of an
-- application whose JWTs are checked offline (the secret's use is its
-- only recorded use) does not make it look unused or dormant.
ALTER TABLE applications ADD COLUMN removed_credentials_last_used_at BIGINT;
