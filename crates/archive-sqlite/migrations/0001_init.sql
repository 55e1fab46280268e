-- postkey archive, SQLite schema version 1.
-- Times are Unix microseconds (UTC); IDs are their canonical text; digests are SHA-256 (32 bytes).
-- Signed records are kept as received, as BLOBs, beside the columns that index them.

CREATE TABLE domains (
    id          TEXT PRIMARY KEY,
    created     INTEGER NOT NULL,
    next_key_id INTEGER NOT NULL CHECK (next_key_id >= 1)
) STRICT;

CREATE TABLE subdomains (
    id      TEXT PRIMARY KEY,
    domain  TEXT NOT NULL REFERENCES domains (id),
    created INTEGER NOT NULL
) STRICT;

-- One head row per hash chain: a domain's, or ADMIN's. Every append updates it in the
-- transaction that inserts the event.
CREATE TABLE chains (
    chain     TEXT PRIMARY KEY,
    count     INTEGER NOT NULL CHECK (count >= 0),
    head_hash BLOB NOT NULL CHECK (length(head_hash) = 32)
) STRICT;

INSERT INTO chains (chain, count, head_hash) VALUES ('ADMIN', 0, zeroblob(32));

CREATE TABLE events (
    chain         TEXT NOT NULL REFERENCES chains (chain),
    seq           INTEGER NOT NULL CHECK (seq >= 1),
    time          INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    key_id        INTEGER,
    record_type   INTEGER,
    record_digest BLOB CHECK (record_digest IS NULL OR length(record_digest) = 32),
    note          TEXT,
    prev_hash     BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash          BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (chain, seq)
) STRICT, WITHOUT ROWID;

CREATE INDEX events_by_key ON events (chain, key_id, seq) WHERE key_id IS NOT NULL;

-- History is append-only, also for SQL that bypasses the store.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE boxes (
    id                  TEXT PRIMARY KEY,
    box_type            TEXT NOT NULL CHECK (box_type IN ('M', 'O', 'S', 'B', 'T')),
    certificate_type    INTEGER NOT NULL,
    certificate         BLOB NOT NULL,
    identity_key        BLOB NOT NULL CHECK (length(identity_key) = 32),
    confidentiality_key BLOB NOT NULL CHECK (length(confidentiality_key) = 32),
    state_version       INTEGER NOT NULL CHECK (state_version >= 0),
    registered          INTEGER NOT NULL
) STRICT;

CREATE TABLE domain_processes (
    box_id      TEXT NOT NULL REFERENCES boxes (id),
    domain      TEXT NOT NULL REFERENCES domains (id),
    subdomains  TEXT NOT NULL,
    record_type INTEGER NOT NULL,
    record      BLOB NOT NULL,
    created     INTEGER NOT NULL,
    PRIMARY KEY (box_id, domain)
) STRICT;

CREATE TABLE bundles (
    domain      TEXT NOT NULL REFERENCES domains (id),
    version     INTEGER NOT NULL CHECK (version >= 0),
    created_by  TEXT NOT NULL,
    record_type INTEGER NOT NULL,
    bundle      BLOB NOT NULL,
    stored      INTEGER NOT NULL,
    PRIMARY KEY (domain, version)
) STRICT;

CREATE TABLE keys (
    domain               TEXT NOT NULL REFERENCES domains (id),
    key_id               INTEGER NOT NULL CHECK (key_id >= 1),
    status               TEXT NOT NULL
                         CHECK (status IN ('new', 'installed', 'active', 'bad', 'obsolete')),
    oak_id               TEXT NOT NULL,
    steel_id             TEXT NOT NULL,
    meter_id             TEXT,
    subdomain            TEXT REFERENCES subdomains (id),
    isn                  TEXT,
    kms_request          INTEGER,
    psr_install          INTEGER,
    kms_install          INTEGER,
    meter_registration   TEXT,
    kms_key_registration INTEGER,
    obsolete             INTEGER,
    updated              INTEGER NOT NULL,
    PRIMARY KEY (domain, key_id),
    CHECK ((subdomain IS NULL) = (isn IS NULL))
) STRICT, WITHOUT ROWID;

-- An ISN names one key per sub-domain, for ever.
CREATE UNIQUE INDEX keys_by_isn ON keys (subdomain, isn) WHERE isn IS NOT NULL;
CREATE INDEX keys_by_status ON keys (domain, status, key_id);
CREATE INDEX keys_by_meter ON keys (meter_id) WHERE meter_id IS NOT NULL;

CREATE TABLE burned_key_ids (
    domain TEXT NOT NULL REFERENCES domains (id),
    key_id INTEGER NOT NULL CHECK (key_id >= 1),
    reason TEXT NOT NULL,
    time   INTEGER NOT NULL,
    PRIMARY KEY (domain, key_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE records (
    id          INTEGER PRIMARY KEY,
    domain      TEXT NOT NULL,
    key_id      INTEGER NOT NULL,
    record_type INTEGER NOT NULL,
    digest      BLOB NOT NULL CHECK (length(digest) = 32),
    bytes       BLOB NOT NULL,
    stored      INTEGER NOT NULL,
    FOREIGN KEY (domain, key_id) REFERENCES keys (domain, key_id),
    UNIQUE (domain, key_id, digest)
) STRICT;

CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'signed records are kept as received'); END;
CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'signed records are kept as received'); END;

CREATE TABLE transcripts (
    id          INTEGER PRIMARY KEY,
    time        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    box_id      TEXT,
    record_type INTEGER NOT NULL,
    transcript  BLOB NOT NULL
) STRICT;

CREATE INDEX transcripts_by_box ON transcripts (box_id) WHERE box_id IS NOT NULL;

CREATE TABLE error_log (
    id            INTEGER PRIMARY KEY,
    time          INTEGER NOT NULL,
    component     TEXT NOT NULL,
    response_code INTEGER NOT NULL,
    message       TEXT NOT NULL,
    domain        TEXT,
    meter_id      TEXT,
    key_id        INTEGER
) STRICT;

CREATE INDEX error_log_by_time ON error_log (time);
