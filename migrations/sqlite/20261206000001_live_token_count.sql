-- Each application's count of live tokens, kept by the database so that a
-- page of applications (or a sort by it) reads one number per application
-- instead of counting its tokens.
--
-- `live_tokens` counts the tokens that are not revoked and whose expiry has
-- not been swept. Expiry is a matter of time, not of a write, so a sweep
-- (`Store::sweep_expired_tokens`) marks expired tokens `expiry_swept` a
-- little after they expire; until then a reader subtracts the few that
-- expired since (an index range on `tokens_counted`). The triggers keep the
-- count for every write that changes what it counts, whichever code path
-- makes it.
ALTER TABLE tokens ADD COLUMN expiry_swept INTEGER NOT NULL DEFAULT 0;
ALTER TABLE applications ADD COLUMN live_tokens INTEGER NOT NULL DEFAULT 0;

UPDATE tokens SET expiry_swept = 1 WHERE revoked_at IS NULL AND expires_at <= unixepoch();
UPDATE applications SET live_tokens = (SELECT COUNT(*) FROM tokens t
    WHERE t.application_id = applications.id AND t.revoked_at IS NULL AND NOT t.expiry_swept);

-- The counted tokens of an application by expiry: the reader's correction
-- (counted but already expired) is a short range of it.
CREATE INDEX tokens_counted ON tokens (application_id, expires_at) WHERE revoked_at IS NULL AND NOT expiry_swept;

CREATE TRIGGER tokens_live_count_insert AFTER INSERT ON tokens
    WHEN NEW.revoked_at IS NULL AND NOT NEW.expiry_swept
BEGIN
    UPDATE applications SET live_tokens = live_tokens + 1 WHERE id = NEW.application_id;
END;

CREATE TRIGGER tokens_live_count_update AFTER UPDATE OF revoked_at, expiry_swept ON tokens
    WHEN (OLD.revoked_at IS NULL AND NOT OLD.expiry_swept) <> (NEW.revoked_at IS NULL AND NOT NEW.expiry_swept)
BEGIN
    UPDATE applications
       SET live_tokens = live_tokens + CASE WHEN NEW.revoked_at IS NULL AND NOT NEW.expiry_swept THEN 1 ELSE -1 END
     WHERE id = NEW.application_id;
END;

CREATE TRIGGER tokens_live_count_delete AFTER DELETE ON tokens
    WHEN OLD.revoked_at IS NULL AND NOT OLD.expiry_swept
BEGIN
    UPDATE applications SET live_tokens = live_tokens - 1 WHERE id = OLD.application_id;
END;
