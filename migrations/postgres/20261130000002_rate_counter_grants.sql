-- How many requests the last count of a row granted: an instance counts
-- the requests of one application that arrive together in one statement,
-- which grants as many as the limits allow.
ALTER TABLE rate_counters ADD COLUMN granted BIGINT NOT NULL DEFAULT 0;
