-- postkey archive, PostgreSQL schema version 2: the installation the archive belongs to.
-- One row, made by the first ceremony in the transaction that registers the first box; never
-- changed or removed, also by SQL that bypasses the store.

CREATE TABLE installation (
    singleton            INTEGER PRIMARY KEY CHECK (singleton = 1),
    id                   BYTEA NOT NULL CHECK (length(id) = 16),
    anchors              BYTEA NOT NULL CHECK (length(anchors) = 32),
    dks_certificate_type INTEGER NOT NULL,
    dks_certificate      BYTEA NOT NULL,
    created              BIGINT NOT NULL
);

CREATE TRIGGER installation_made_once BEFORE UPDATE OR DELETE ON installation
    FOR EACH ROW EXECUTE FUNCTION postkey_refuse_change();
CREATE TRIGGER installation_no_truncate BEFORE TRUNCATE ON installation
    FOR EACH STATEMENT EXECUTE FUNCTION postkey_refuse_change();
