-- Each application's count of live tokens, kept by the database so that a
-- page of applications (or a sort by it) reads one number per application
-- instead of counting its tokens.
--
-- `live_tokens` counts the tokens that are not revoked and whose expiry has
-- not been swept. Expiry is a matter of time, not of a write, so a sweep
-- (`Store::sweep_expired_tokens`) marks expired tokens `expiry_swept` a
-- little after they expire; until then a reader subtracts the few that
-- expired since (an index range on `tokens_counted`). The trigger keeps the
-- count for every write that changes what it counts, whichever code path
-- makes it. It updates the application's row, so writers lock that row
-- before a token's (the issuer and the use cases do; the sweep skips
-- applications locked by others) and never the other way round.
ALTER TABLE tokens ADD COLUMN expiry_swept BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE applications ADD COLUMN live_tokens BIGINT NOT NULL DEFAULT 0;

UPDATE tokens SET expiry_swept = TRUE WHERE revoked_at IS NULL AND expires_at <= extract(epoch FROM now())::bigint;
UPDATE applications SET live_tokens = (SELECT COUNT(*) FROM tokens t
    WHERE t.application_id = applications.id AND t.revoked_at IS NULL AND NOT t.expiry_swept);

CREATE INDEX tokens_counted ON tokens (application_id, expires_at) WHERE revoked_at IS NULL AND NOT expiry_swept;

CREATE FUNCTION tokens_live_count() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was BOOLEAN := TG_OP <> 'INSERT' AND OLD.revoked_at IS NULL AND NOT OLD.expiry_swept;
    is_now BOOLEAN := TG_OP <> 'DELETE' AND NEW.revoked_at IS NULL AND NOT NEW.expiry_swept;
BEGIN
    IF was AND NOT is_now THEN
        UPDATE applications SET live_tokens = live_tokens - 1 WHERE id = OLD.application_id;
    ELSIF is_now AND NOT was THEN
        UPDATE applications SET live_tokens = live_tokens + 1 WHERE id = NEW.application_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tokens_live_count AFTER INSERT OR DELETE OR UPDATE OF revoked_at, expiry_swept ON tokens
    FOR EACH ROW EXECUTE FUNCTION tokens_live_count();
