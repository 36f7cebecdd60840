-- The applications list sorts by name (case-insensitively) and pages: with
-- this index a page reads its 25 rows in order instead of sorting every
-- application on every request.
CREATE INDEX applications_by_lower_name ON applications (lower(name), id);
