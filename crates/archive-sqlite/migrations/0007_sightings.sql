-- postkey archive, SQLite schema version 7: verification's duplicate memory. One row for each
-- good mailpiece first seen: its meter and piece count (unique: the constraint decides which of
-- two verifiers saw it first), when, the site that saw it, and the event of the chain SIGHTS
-- that recorded its batch (the event's note holds the batch's count and digest, so a row removed
-- or added by hand breaks what the audit checks). Rows are only added.

CREATE TABLE sightings (
    meter       TEXT    NOT NULL,
    piece_count INTEGER NOT NULL CHECK (piece_count BETWEEN 0 AND 4294967295),
    first_seen  INTEGER NOT NULL,
    site        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (meter, piece_count)
) WITHOUT ROWID;

CREATE INDEX sightings_by_seq ON sightings (seq);

INSERT INTO chains (chain, count, head_hash) VALUES ('SIGHTS', 0, zeroblob(32));

CREATE TRIGGER sightings_no_update BEFORE UPDATE ON sightings
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;

CREATE TRIGGER sightings_no_delete BEFORE DELETE ON sightings
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;
