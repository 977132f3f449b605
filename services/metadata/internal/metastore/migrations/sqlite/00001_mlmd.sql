-- +goose Up
CREATE TABLE mlmd_type (
    id          INTEGER PRIMARY KEY,
    kind        INTEGER NOT NULL,            -- 1 artifact, 2 execution, 3 context
    name        TEXT    NOT NULL,
    version     TEXT    NOT NULL DEFAULT '',
    description TEXT    NOT NULL DEFAULT '',
    external_id TEXT    UNIQUE,
    base_type   TEXT    NOT NULL DEFAULT '',
    UNIQUE (kind, name, version)
);
CREATE INDEX mlmd_type_by_name ON mlmd_type (name);

CREATE TABLE type_property (
    type_id   INTEGER NOT NULL REFERENCES mlmd_type (id),
    name      TEXT    NOT NULL,
    data_type TEXT    NOT NULL,
    PRIMARY KEY (type_id, name)
) WITHOUT ROWID;

CREATE TABLE artifact (
    id                  INTEGER PRIMARY KEY,
    type_id             INTEGER NOT NULL REFERENCES mlmd_type (id),
    uri                 TEXT    NOT NULL DEFAULT '',
    state               INTEGER NOT NULL DEFAULT 0,
    name                TEXT,
    external_id         TEXT    UNIQUE,
    create_time_ms      INTEGER NOT NULL,
    last_update_time_ms INTEGER NOT NULL,
    UNIQUE (type_id, name)
);
CREATE INDEX artifact_by_uri ON artifact (uri);
CREATE INDEX artifact_by_name ON artifact (name);

CREATE TABLE execution (
    id                  INTEGER PRIMARY KEY,
    type_id             INTEGER NOT NULL REFERENCES mlmd_type (id),
    last_known_state    INTEGER NOT NULL DEFAULT 0,
    name                TEXT,
    external_id         TEXT    UNIQUE,
    create_time_ms      INTEGER NOT NULL,
    last_update_time_ms INTEGER NOT NULL,
    UNIQUE (type_id, name)
);
CREATE INDEX execution_by_name ON execution (name);

CREATE TABLE context (
    id                  INTEGER PRIMARY KEY,
    type_id             INTEGER NOT NULL REFERENCES mlmd_type (id),
    name                TEXT    NOT NULL,
    external_id         TEXT    UNIQUE,
    create_time_ms      INTEGER NOT NULL,
    last_update_time_ms INTEGER NOT NULL,
    UNIQUE (type_id, name)
);
CREATE INDEX context_by_name ON context (name);

-- Property tables: one row per (node, name, is_custom); exactly one value column is set.
CREATE TABLE artifact_property (
    artifact_id  INTEGER NOT NULL REFERENCES artifact (id),
    name         TEXT    NOT NULL,
    is_custom    INTEGER NOT NULL,
    int_value    INTEGER,
    double_value REAL,
    string_value TEXT,
    bool_value   INTEGER,
    struct_value TEXT,
    proto_value  TEXT,
    PRIMARY KEY (artifact_id, name, is_custom)
) WITHOUT ROWID;
CREATE INDEX artifact_property_string ON artifact_property (name, is_custom, string_value);
CREATE INDEX artifact_property_int ON artifact_property (name, is_custom, int_value);
CREATE INDEX artifact_property_double ON artifact_property (name, is_custom, double_value);

CREATE TABLE execution_property (
    execution_id INTEGER NOT NULL REFERENCES execution (id),
    name         TEXT    NOT NULL,
    is_custom    INTEGER NOT NULL,
    int_value    INTEGER,
    double_value REAL,
    string_value TEXT,
    bool_value   INTEGER,
    struct_value TEXT,
    proto_value  TEXT,
    PRIMARY KEY (execution_id, name, is_custom)
) WITHOUT ROWID;
-- Also serves the cache lookup: name = 'cache_fingerprint', is_custom = 1, string_value = ?.
CREATE INDEX execution_property_string ON execution_property (name, is_custom, string_value);
CREATE INDEX execution_property_int ON execution_property (name, is_custom, int_value);
CREATE INDEX execution_property_double ON execution_property (name, is_custom, double_value);

CREATE TABLE context_property (
    context_id   INTEGER NOT NULL REFERENCES context (id),
    name         TEXT    NOT NULL,
    is_custom    INTEGER NOT NULL,
    int_value    INTEGER,
    double_value REAL,
    string_value TEXT,
    bool_value   INTEGER,
    struct_value TEXT,
    proto_value  TEXT,
    PRIMARY KEY (context_id, name, is_custom)
) WITHOUT ROWID;
CREATE INDEX context_property_string ON context_property (name, is_custom, string_value);
CREATE INDEX context_property_int ON context_property (name, is_custom, int_value);
CREATE INDEX context_property_double ON context_property (name, is_custom, double_value);

-- Events: id order is recorded order. The unique key makes re-recording a no-op; the two
-- covering indexes serve the lineage walk in both directions.
CREATE TABLE event (
    id           INTEGER PRIMARY KEY,
    artifact_id  INTEGER NOT NULL REFERENCES artifact (id),
    execution_id INTEGER NOT NULL REFERENCES execution (id),
    type         INTEGER NOT NULL,
    time_ms      INTEGER NOT NULL,
    path         TEXT,
    UNIQUE (artifact_id, execution_id, type)
);
CREATE INDEX event_by_artifact ON event (artifact_id, type, execution_id);
CREATE INDEX event_by_execution ON event (execution_id, type, artifact_id);

CREATE TABLE attribution (
    context_id  INTEGER NOT NULL REFERENCES context (id),
    artifact_id INTEGER NOT NULL REFERENCES artifact (id),
    PRIMARY KEY (context_id, artifact_id)
) WITHOUT ROWID;
CREATE INDEX attribution_by_artifact ON attribution (artifact_id, context_id);

CREATE TABLE association (
    context_id   INTEGER NOT NULL REFERENCES context (id),
    execution_id INTEGER NOT NULL REFERENCES execution (id),
    PRIMARY KEY (context_id, execution_id)
) WITHOUT ROWID;
CREATE INDEX association_by_execution ON association (execution_id, context_id);

CREATE TABLE parent_context (
    child_id  INTEGER NOT NULL REFERENCES context (id),
    parent_id INTEGER NOT NULL REFERENCES context (id),
    PRIMARY KEY (child_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX parent_context_by_parent ON parent_context (parent_id, child_id);

-- +goose Down
DROP TABLE parent_context;
DROP TABLE association;
DROP TABLE attribution;
DROP TABLE event;
DROP TABLE context_property;
DROP TABLE execution_property;
DROP TABLE artifact_property;
DROP TABLE context;
DROP TABLE execution;
DROP TABLE artifact;
DROP TABLE type_property;
DROP TABLE mlmd_type;
