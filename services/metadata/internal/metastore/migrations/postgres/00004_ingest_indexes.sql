-- +goose Up
-- The value indexes of the property tables serve the property filters of the list APIs (and, on
-- execution_property, the cache lookup by cache_fingerprint); a filter compares one typed column,
-- which implies that column IS NOT NULL, so partial indexes serve them as well. Every property
-- row sets one value column: partial indexes hold only the rows a filter on that column can
-- match, and the ingest maintains one value index per row written instead of three.
DROP INDEX artifact_property_string;
DROP INDEX artifact_property_int;
DROP INDEX artifact_property_double;
CREATE INDEX artifact_property_string ON artifact_property (name, is_custom, string_value) WHERE string_value IS NOT NULL;
CREATE INDEX artifact_property_int ON artifact_property (name, is_custom, int_value) WHERE int_value IS NOT NULL;
CREATE INDEX artifact_property_double ON artifact_property (name, is_custom, double_value) WHERE double_value IS NOT NULL;
DROP INDEX execution_property_string;
DROP INDEX execution_property_int;
DROP INDEX execution_property_double;
CREATE INDEX execution_property_string ON execution_property (name, is_custom, string_value) WHERE string_value IS NOT NULL;
CREATE INDEX execution_property_int ON execution_property (name, is_custom, int_value) WHERE int_value IS NOT NULL;
CREATE INDEX execution_property_double ON execution_property (name, is_custom, double_value) WHERE double_value IS NOT NULL;
DROP INDEX context_property_string;
DROP INDEX context_property_int;
DROP INDEX context_property_double;
CREATE INDEX context_property_string ON context_property (name, is_custom, string_value) WHERE string_value IS NOT NULL;
CREATE INDEX context_property_int ON context_property (name, is_custom, int_value) WHERE int_value IS NOT NULL;
CREATE INDEX context_property_double ON context_property (name, is_custom, double_value) WHERE double_value IS NOT NULL;

-- Property and edge rows written by the ingest carry ids that the same transaction wrote or
-- returned, and nodes are never deleted, so their foreign keys can never fail there; yet each
-- costs a trigger running a locking index probe per row written, half of a batch's time on
-- the edge tables. The foreign keys of the property tables and of event, attribution and
-- association are dropped. The API paths that take node ids from callers (PutEvents,
-- PutAttributionsAndAssociations, PutExecution) check that the nodes exist before writing
-- (edges.go), with the error the foreign keys gave; parent_context keeps its foreign keys
-- (a few rows per batch).
ALTER TABLE artifact_property DROP CONSTRAINT artifact_property_artifact_id_fkey;
ALTER TABLE execution_property DROP CONSTRAINT execution_property_execution_id_fkey;
ALTER TABLE context_property DROP CONSTRAINT context_property_context_id_fkey;
ALTER TABLE event DROP CONSTRAINT event_artifact_id_fkey;
ALTER TABLE event DROP CONSTRAINT event_execution_id_fkey;
ALTER TABLE attribution DROP CONSTRAINT attribution_context_id_fkey;
ALTER TABLE attribution DROP CONSTRAINT attribution_artifact_id_fkey;
ALTER TABLE association DROP CONSTRAINT association_context_id_fkey;
ALTER TABLE association DROP CONSTRAINT association_execution_id_fkey;

-- The unique key of event and its index by artifact held the same columns: one unique index in
-- the lineage walk's order, (artifact_id, type, execution_id), is both.
ALTER TABLE event DROP CONSTRAINT event_artifact_id_execution_id_type_key;
DROP INDEX event_by_artifact;
CREATE UNIQUE INDEX event_by_artifact ON event (artifact_id, type, execution_id);

-- Ingested artifacts have no name (they are identified by URI): the index by name holds only
-- the named ones, which are all a filter on name can match.
DROP INDEX artifact_by_name;
CREATE INDEX artifact_by_name ON artifact (name) WHERE name IS NOT NULL;

-- +goose Down
DROP INDEX event_by_artifact;
CREATE INDEX event_by_artifact ON event (artifact_id, type, execution_id);
ALTER TABLE event ADD CONSTRAINT event_artifact_id_execution_id_type_key UNIQUE (artifact_id, execution_id, type);
ALTER TABLE event ADD CONSTRAINT event_artifact_id_fkey FOREIGN KEY (artifact_id) REFERENCES artifact (id);
ALTER TABLE event ADD CONSTRAINT event_execution_id_fkey FOREIGN KEY (execution_id) REFERENCES execution (id);
ALTER TABLE attribution ADD CONSTRAINT attribution_context_id_fkey FOREIGN KEY (context_id) REFERENCES context (id);
ALTER TABLE attribution ADD CONSTRAINT attribution_artifact_id_fkey FOREIGN KEY (artifact_id) REFERENCES artifact (id);
ALTER TABLE association ADD CONSTRAINT association_context_id_fkey FOREIGN KEY (context_id) REFERENCES context (id);
ALTER TABLE association ADD CONSTRAINT association_execution_id_fkey FOREIGN KEY (execution_id) REFERENCES execution (id);
ALTER TABLE artifact_property ADD CONSTRAINT artifact_property_artifact_id_fkey FOREIGN KEY (artifact_id) REFERENCES artifact (id);
ALTER TABLE execution_property ADD CONSTRAINT execution_property_execution_id_fkey FOREIGN KEY (execution_id) REFERENCES execution (id);
ALTER TABLE context_property ADD CONSTRAINT context_property_context_id_fkey FOREIGN KEY (context_id) REFERENCES context (id);
DROP INDEX artifact_property_string;
DROP INDEX artifact_property_int;
DROP INDEX artifact_property_double;
CREATE INDEX artifact_property_string ON artifact_property (name, is_custom, string_value);
CREATE INDEX artifact_property_int ON artifact_property (name, is_custom, int_value);
CREATE INDEX artifact_property_double ON artifact_property (name, is_custom, double_value);
DROP INDEX execution_property_string;
DROP INDEX execution_property_int;
DROP INDEX execution_property_double;
CREATE INDEX execution_property_string ON execution_property (name, is_custom, string_value);
CREATE INDEX execution_property_int ON execution_property (name, is_custom, int_value);
CREATE INDEX execution_property_double ON execution_property (name, is_custom, double_value);
DROP INDEX context_property_string;
DROP INDEX context_property_int;
DROP INDEX context_property_double;
CREATE INDEX context_property_string ON context_property (name, is_custom, string_value);
CREATE INDEX context_property_int ON context_property (name, is_custom, int_value);
CREATE INDEX context_property_double ON context_property (name, is_custom, double_value);
DROP INDEX artifact_by_name;
CREATE INDEX artifact_by_name ON artifact (name);
