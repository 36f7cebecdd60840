-- The counted tokens by expiry alone: the total of live tokens (the
-- overview, `GET /api/v1/stats`) is the sum of the kept counts less the
-- counted tokens that expired since the last sweep, one short range of
-- this index; before, it was one range of `tokens_counted` per application
-- (11 ms at 10,000 applications and 1 M tokens, 0.8 ms with it).
CREATE INDEX tokens_counted_by_expiry ON tokens (expires_at) WHERE revoked_at IS NULL AND NOT expiry_swept;
