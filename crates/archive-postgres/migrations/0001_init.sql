-- postkey archive, PostgreSQL schema version 1.
-- Times are Unix microseconds (UTC) in BIGINT, exactly as hashed into the chains; IDs are their
-- canonical text; digests are SHA-256 (32 bytes). Signed records are kept as received, as BYTEA,
-- beside the columns that index them. Invariants are carried by constraints and guarded updates.

CREATE TABLE domains (
    id          TEXT PRIMARY KEY,
    created     BIGINT NOT NULL,
    next_key_id BIGINT NOT NULL CHECK (next_key_id >= 1)
);

CREATE TABLE subdomains (
    id      TEXT PRIMARY KEY,
    domain  TEXT NOT NULL REFERENCES domains (id),
    created BIGINT NOT NULL
);

-- One head row per hash chain, locked (SELECT ... FOR UPDATE) by every append.
CREATE TABLE chains (
    chain     TEXT PRIMARY KEY,
    count     BIGINT NOT NULL CHECK (count >= 0),
    head_hash BYTEA NOT NULL CHECK (length(head_hash) = 32)
);

INSERT INTO chains (chain, count, head_hash) VALUES ('ADMIN', 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE events (
    chain         TEXT NOT NULL REFERENCES chains (chain),
    seq           BIGINT NOT NULL CHECK (seq >= 1),
    time          BIGINT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    key_id        BIGINT,
    record_type   BIGINT,
    record_digest BYTEA CHECK (record_digest IS NULL OR length(record_digest) = 32),
    note          TEXT,
    prev_hash     BYTEA NOT NULL CHECK (length(prev_hash) = 32),
    hash          BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (chain, seq)
);

CREATE INDEX events_by_key ON events (chain, key_id, seq) WHERE key_id IS NOT NULL;

-- History and signed records are append-only, also for SQL that bypasses the store.
CREATE FUNCTION postkey_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION postkey_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION postkey_refuse_change();

CREATE TABLE boxes (
    id                  TEXT PRIMARY KEY,
    box_type            TEXT NOT NULL CHECK (box_type IN ('M', 'O', 'S', 'B', 'T')),
    certificate_type    BIGINT NOT NULL,
    certificate         BYTEA NOT NULL,
    identity_key        BYTEA NOT NULL CHECK (length(identity_key) = 32),
    confidentiality_key BYTEA NOT NULL CHECK (length(confidentiality_key) = 32),
    state_version       BIGINT NOT NULL CHECK (state_version >= 0),
    registered          BIGINT NOT NULL
);

CREATE TABLE domain_processes (
    box_id      TEXT NOT NULL REFERENCES boxes (id),
    domain      TEXT NOT NULL REFERENCES domains (id),
    subdomains  TEXT NOT NULL,
    record_type BIGINT NOT NULL,
    record      BYTEA NOT NULL,
    created     BIGINT NOT NULL,
    PRIMARY KEY (box_id, domain)
);

CREATE TABLE bundles (
    domain      TEXT NOT NULL REFERENCES domains (id),
    version     BIGINT NOT NULL CHECK (version >= 0),
    created_by  TEXT NOT NULL,
    record_type BIGINT NOT NULL,
    bundle      BYTEA NOT NULL,
    stored      BIGINT NOT NULL,
    PRIMARY KEY (domain, version)
);

CREATE TABLE keys (
    domain               TEXT NOT NULL REFERENCES domains (id),
    key_id               BIGINT NOT NULL CHECK (key_id >= 1),
    status               TEXT NOT NULL
                         CHECK (status IN ('new', 'installed', 'active', 'bad', 'obsolete')),
    oak_id               TEXT NOT NULL,
    steel_id             TEXT NOT NULL,
    meter_id             TEXT,
    subdomain            TEXT REFERENCES subdomains (id),
    isn                  TEXT,
    kms_request          BIGINT,
    psr_install          BIGINT,
    kms_install          BIGINT,
    meter_registration   TEXT,
    kms_key_registration BIGINT,
    obsolete             BIGINT,
    updated              BIGINT NOT NULL,
    PRIMARY KEY (domain, key_id),
    CHECK ((subdomain IS NULL) = (isn IS NULL))
);

-- An ISN names one key per sub-domain, for ever.
CREATE UNIQUE INDEX keys_by_isn ON keys (subdomain, isn) WHERE isn IS NOT NULL;
CREATE INDEX keys_by_status ON keys (domain, status, key_id);
CREATE INDEX keys_by_meter ON keys (meter_id) WHERE meter_id IS NOT NULL;

CREATE TABLE burned_key_ids (
    domain TEXT NOT NULL REFERENCES domains (id),
    key_id BIGINT NOT NULL CHECK (key_id >= 1),
    reason TEXT NOT NULL,
    time   BIGINT NOT NULL,
    PRIMARY KEY (domain, key_id)
);

CREATE TABLE records (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain      TEXT NOT NULL,
    key_id      BIGINT NOT NULL,
    record_type BIGINT NOT NULL,
    digest      BYTEA NOT NULL CHECK (length(digest) = 32),
    bytes       BYTEA NOT NULL,
    stored      BIGINT NOT NULL,
    FOREIGN KEY (domain, key_id) REFERENCES keys (domain, key_id),
    UNIQUE (domain, key_id, digest)
);

CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON records
    FOR EACH ROW EXECUTE FUNCTION postkey_refuse_change();
CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON records
    FOR EACH STATEMENT EXECUTE FUNCTION postkey_refuse_change();

CREATE TABLE transcripts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time        BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    box_id      TEXT,
    record_type BIGINT NOT NULL,
    transcript  BYTEA NOT NULL
);

CREATE INDEX transcripts_by_box ON transcripts (box_id) WHERE box_id IS NOT NULL;

CREATE TABLE error_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time          BIGINT NOT NULL,
    component     TEXT NOT NULL,
    response_code BIGINT NOT NULL,
    message       TEXT NOT NULL,
    domain        TEXT,
    meter_id      TEXT,
    key_id        BIGINT
);

CREATE INDEX error_log_by_time ON error_log (time);
