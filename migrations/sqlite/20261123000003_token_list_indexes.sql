-- "Last used" per application in the applications list: MAX over an index
-- instead of a scan of every token of the application.
CREATE INDEX tokens_last_used ON tokens (application_id, last_used_at);
