-- Schema registry state. Ids are global and never reused (a sequence, and no
-- delete ever frees one); a schema's identity is its normalized text plus
-- type, references, metadata and rule set, so the same schema registered
-- under two subjects shares one id.

CREATE SEQUENCE schema_id_seq;

CREATE TABLE schemas (
    id              integer PRIMARY KEY,
    schema_type     text    NOT NULL,
    schema_text     text    NOT NULL,
    references_json jsonb   NOT NULL DEFAULT '[]',
    metadata        jsonb,
    rule_set        jsonb,
    -- What deduplication compares; md5 keeps the unique index small, and the
    -- full identity is compared again on a hit.
    identity        text    NOT NULL,
    identity_md5    text    GENERATED ALWAYS AS (md5(identity)) STORED UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subject_versions (
    subject    text    NOT NULL,
    version    integer NOT NULL CHECK (version > 0),
    schema_id  integer NOT NULL REFERENCES schemas (id),
    deleted    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);
CREATE INDEX subject_versions_schema_id ON subject_versions (schema_id);

-- Compatibility level per subject; the empty subject is the global level.
CREATE TABLE compatibility_config (
    subject       text PRIMARY KEY,
    compatibility text NOT NULL
);

-- Mode per subject; the empty subject is the global mode.
CREATE TABLE registry_mode (
    subject text PRIMARY KEY,
    mode    text NOT NULL CHECK (mode IN ('READWRITE', 'READONLY', 'IMPORT'))
);
