-- The applications list sorts names naturally (etl-job-2 before
-- etl-job-10): the key is written by the core with every name (digit runs
-- length-prefixed, lower case) and filled for existing rows at start-up.
ALTER TABLE applications ADD COLUMN name_key TEXT;
CREATE INDEX applications_by_name_key ON applications (name_key, id);
