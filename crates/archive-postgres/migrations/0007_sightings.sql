-- postkey archive, PostgreSQL schema version 7: verification's duplicate memory. One row for
-- each good mailpiece first seen: its meter and piece count (unique: the constraint decides
-- which of two verifiers saw it first), when, the site that saw it, and the event of the chain
-- SIGHTS that recorded its batch (the event's note holds the batch's count and digest, so a row
-- removed or added by hand breaks what the audit checks). Rows are only added.

CREATE TABLE sightings (
    meter       TEXT   NOT NULL,
    piece_count BIGINT NOT NULL CHECK (piece_count BETWEEN 0 AND 4294967295),
    first_seen  BIGINT NOT NULL,
    site        TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (meter, piece_count)
);

CREATE INDEX sightings_by_seq ON sightings (seq);

INSERT INTO chains (chain, count, head_hash) VALUES ('SIGHTS', 0, decode(repeat('00', 32), 'hex'));

CREATE TRIGGER sightings_no_change BEFORE UPDATE OR DELETE ON sightings
    FOR EACH ROW EXECUTE FUNCTION postkey_refuse_change();
CREATE TRIGGER sightings_no_truncate BEFORE TRUNCATE ON sightings
    FOR EACH STATEMENT EXECUTE FUNCTION postkey_refuse_change();
