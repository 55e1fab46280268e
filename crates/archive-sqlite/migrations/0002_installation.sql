-- postkey archive, SQLite schema version 2: the installation the archive belongs to.
-- One row, made by the first ceremony in the transaction that registers the first box; never
-- changed or removed, also by SQL that bypasses the store.

CREATE TABLE installation (
    singleton            INTEGER PRIMARY KEY CHECK (singleton = 1),
    id                   BLOB NOT NULL CHECK (length(id) = 16),
    anchors              BLOB NOT NULL CHECK (length(anchors) = 32),
    dks_certificate_type INTEGER NOT NULL,
    dks_certificate      BLOB NOT NULL,
    created              INTEGER NOT NULL
) STRICT;

CREATE TRIGGER installation_no_update BEFORE UPDATE ON installation
BEGIN SELECT RAISE(ABORT, 'the installation is made once'); END;
CREATE TRIGGER installation_no_delete BEFORE DELETE ON installation
BEGIN SELECT RAISE(ABORT, 'the installation is made once'); END;
