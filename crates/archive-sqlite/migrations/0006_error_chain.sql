-- postkey archive, SQLite schema version 6: the error log chained. Every entry logged from now on
-- is also an event of the chain `ERRORS` (its fields in the event's note), and `seq` names it;
-- entries logged before have none. The error log is append-only like the other chains.

ALTER TABLE error_log ADD COLUMN seq INTEGER;

CREATE UNIQUE INDEX error_log_by_seq ON error_log (seq);

INSERT INTO chains (chain, count, head_hash) VALUES ('ERRORS', 0, zeroblob(32));

CREATE TRIGGER error_log_no_update BEFORE UPDATE ON error_log
BEGIN SELECT RAISE(ABORT, 'the error log is append-only'); END;

CREATE TRIGGER error_log_no_delete BEFORE DELETE ON error_log
BEGIN SELECT RAISE(ABORT, 'the error log is append-only'); END;
