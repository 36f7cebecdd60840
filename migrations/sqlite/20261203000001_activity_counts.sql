-- Per-application activity for the charts: counts per minute (kept 48
-- hours, then rolled up into hours) and per hour (kept 90 days). Kinds:
-- issued, used, and the refusal reasons (wrong_secret, invalid_token,
-- rate_limited, scope, address_not_allowed, disabled). Instances add their
-- counts to the same rows, so several of them sum up.
CREATE TABLE activity_minutes (
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    minute         INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    count          INTEGER NOT NULL,
    PRIMARY KEY (application_id, minute, kind)
);
CREATE INDEX activity_minutes_by_minute ON activity_minutes (minute);
CREATE TABLE activity_hours (
    application_id INTEGER NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    hour           INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    count          INTEGER NOT NULL,
    PRIMARY KEY (application_id, hour, kind)
);
CREATE INDEX activity_hours_by_hour ON activity_hours (hour);
