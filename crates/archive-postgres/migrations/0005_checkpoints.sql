-- postkey archive, PostgreSQL schema version 5: the audit trail's signed checkpoints. A Brass
-- box signs, with the ADMIN audit key, that a chain had `count` events ending in `head`; each
-- chain's checkpoints are numbered from 1 and each names the digest of the one before (in its
-- signed bytes). Kept as received, never changed; storing one is an ADMIN chain event.

CREATE TABLE checkpoints (
    chain       TEXT NOT NULL REFERENCES chains (chain),
    number      BIGINT NOT NULL CHECK (number >= 1),
    count       BIGINT NOT NULL CHECK (count >= 0),
    head        BYTEA NOT NULL CHECK (length(head) = 32),
    record_type BIGINT NOT NULL,
    record      BYTEA NOT NULL,
    time        BIGINT NOT NULL,
    PRIMARY KEY (chain, number)
);

CREATE TRIGGER checkpoints_kept_as_received BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION postkey_refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION postkey_refuse_change();
