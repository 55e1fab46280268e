-- postkey archive, SQLite schema version 3: key IDs reserved by the Oak box generating them.
-- A row lives from the allocation until the transaction that made each of its IDs a key or
-- burned it; a row left behind is a run that stopped, and the next run of its holder burns what
-- never became a key.

CREATE TABLE key_id_reservations (
    domain   TEXT NOT NULL REFERENCES domains (id),
    first_id INTEGER NOT NULL CHECK (first_id >= 1),
    last_id  INTEGER NOT NULL,
    holder   TEXT NOT NULL,
    time     INTEGER NOT NULL,
    PRIMARY KEY (domain, first_id),
    CHECK (last_id >= first_id)
) STRICT;

CREATE INDEX key_id_reservations_by_holder ON key_id_reservations (holder, domain, first_id);
