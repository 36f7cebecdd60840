-- The token a rotation put in a token's place. A replaced token may keep
-- working for the rotation's overlap, but it is not extended or rotated
-- again: its successor is (the overlap would otherwise outlive the rotation).
ALTER TABLE tokens ADD COLUMN replaced_by BIGINT;
