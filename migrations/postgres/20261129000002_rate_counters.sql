-- Per-application request counters shared by every instance: the current
-- second and hour (by the database's clock) and the requests counted in
-- each. Unlogged: a crash may forget the current windows, never a token.
CREATE UNLOGGED TABLE rate_counters (
    application_id BIGINT PRIMARY KEY,
    second         BIGINT NOT NULL,
    in_second      BIGINT NOT NULL,
    hour           BIGINT NOT NULL,
    in_hour        BIGINT NOT NULL
);
