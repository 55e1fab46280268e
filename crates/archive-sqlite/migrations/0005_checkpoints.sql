-- postkey archive, SQLite schema version 5: the audit trail's signed checkpoints. A Brass box
-- signs, with the ADMIN audit key, that a chain had `count` events ending in `head`; each chain's
-- checkpoints are numbered from 1 and each names the digest of the one before (in its signed
-- bytes). Kept as received, never changed; storing one is an ADMIN chain event.

CREATE TABLE checkpoints (
    chain       TEXT NOT NULL REFERENCES chains (chain),
    number      INTEGER NOT NULL CHECK (number >= 1),
    count       INTEGER NOT NULL CHECK (count >= 0),
    head        BLOB NOT NULL CHECK (length(head) = 32),
    record_type INTEGER NOT NULL,
    record      BLOB NOT NULL,
    time        INTEGER NOT NULL,
    PRIMARY KEY (chain, number)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are kept as received'); END;

CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are kept as received'); END;
