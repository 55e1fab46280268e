-- postkey archive, SQLite schema version 7: verification's duplicate memory. One row for each
-- good mailpiece first seen: its meter and piece count (unique: the constraint decides which of
-- two verifiers saw it first), when, and the site that saw it. Rows are only added.

CREATE TABLE sightings (
    meter       TEXT    NOT NULL,
    piece_count INTEGER NOT NULL CHECK (piece_count BETWEEN 0 AND 4294967295),
    first_seen  INTEGER NOT NULL,
    site        TEXT    NOT NULL,
    PRIMARY KEY (meter, piece_count)
) WITHOUT ROWID;

CREATE TRIGGER sightings_no_update BEFORE UPDATE ON sightings
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;

CREATE TRIGGER sightings_no_delete BEFORE DELETE ON sightings
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;
