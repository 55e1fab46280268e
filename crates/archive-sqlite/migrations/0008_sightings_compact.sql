-- postkey archive, SQLite schema version 8: the duplicate memory made compact. A batch of
-- 65,536 sightings from thousands of meters touches nearly every page of the table (it is kept
-- in (meter, piece count) order), and SQLite writes each touched page to the WAL at commit: the
-- smaller the rows, the fewer the pages. A row is now the meter's number, the piece count and
-- the stamp it was seen under; the meter's ID is kept once in `sighting_meters`, the time, site
-- and SIGHTS event of a batch once in `sighting_stamps` (a batch normally has one stamp). What
-- a sighting says is unchanged: meter, piece count, first seen, site, event. Rows are only added.

CREATE TABLE sighting_meters (
    id    INTEGER PRIMARY KEY,
    meter TEXT    NOT NULL UNIQUE
);

CREATE TABLE sighting_stamps (
    id         INTEGER PRIMARY KEY,
    seq        INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    site       TEXT    NOT NULL,
    UNIQUE (seq, first_seen, site)
);

-- The references are checked at commit: a batch's stamps are written after its rows, and only
-- those that some added row names.
CREATE TABLE sightings_compact (
    meter       INTEGER NOT NULL
                REFERENCES sighting_meters (id) DEFERRABLE INITIALLY DEFERRED,
    piece_count INTEGER NOT NULL CHECK (piece_count BETWEEN 0 AND 4294967295),
    stamp       INTEGER NOT NULL
                REFERENCES sighting_stamps (id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (meter, piece_count)
) WITHOUT ROWID;

INSERT INTO sighting_meters (meter) SELECT DISTINCT meter FROM sightings ORDER BY meter;
INSERT INTO sighting_stamps (seq, first_seen, site)
    SELECT DISTINCT seq, first_seen, site FROM sightings ORDER BY seq, first_seen, site;
INSERT INTO sightings_compact (meter, piece_count, stamp)
    SELECT m.id, s.piece_count, t.id
    FROM sightings s
    JOIN sighting_meters m ON m.meter = s.meter
    JOIN sighting_stamps t ON t.seq = s.seq AND t.first_seen = s.first_seen AND t.site = s.site;

DROP TABLE sightings;
ALTER TABLE sightings_compact RENAME TO sightings;
CREATE INDEX sightings_by_stamp ON sightings (stamp);

CREATE TRIGGER sightings_no_update BEFORE UPDATE ON sightings
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;
CREATE TRIGGER sightings_no_delete BEFORE DELETE ON sightings
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;
CREATE TRIGGER sighting_meters_no_update BEFORE UPDATE ON sighting_meters
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;
CREATE TRIGGER sighting_meters_no_delete BEFORE DELETE ON sighting_meters
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;
CREATE TRIGGER sighting_stamps_no_update BEFORE UPDATE ON sighting_stamps
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;
CREATE TRIGGER sighting_stamps_no_delete BEFORE DELETE ON sighting_stamps
BEGIN SELECT RAISE(ABORT, 'the duplicate memory is append-only'); END;
