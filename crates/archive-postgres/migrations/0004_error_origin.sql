-- postkey archive, PostgreSQL schema version 4: the origin of an error-log entry that was written
-- elsewhere first (a line of a host's error-log spool, by its unique ID). An origin is logged
-- once: a spool moved in again after a crash mid-move adds nothing twice. Entries logged
-- directly have none (NULLs never conflict).

ALTER TABLE error_log ADD COLUMN origin TEXT;

CREATE UNIQUE INDEX error_log_by_origin ON error_log (origin);
