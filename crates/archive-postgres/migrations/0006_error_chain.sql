-- postkey archive, PostgreSQL schema version 6: the error log chained. Every entry logged from
-- now on is also an event of the chain `ERRORS` (its fields in the event's note), and `seq` names
-- it; entries logged before have none. The error log is append-only like the other chains.

ALTER TABLE error_log ADD COLUMN seq BIGINT;

CREATE UNIQUE INDEX error_log_by_seq ON error_log (seq);

INSERT INTO chains (chain, count, head_hash) VALUES ('ERRORS', 0, decode(repeat('00', 32), 'hex'));

CREATE TRIGGER error_log_append_only BEFORE UPDATE OR DELETE ON error_log
    FOR EACH ROW EXECUTE FUNCTION postkey_refuse_change();
CREATE TRIGGER error_log_no_truncate BEFORE TRUNCATE ON error_log
    FOR EACH STATEMENT EXECUTE FUNCTION postkey_refuse_change();
