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

-- Ingested artifacts have no name (they are identified by URI): the index by name holds only
-- the named ones, which are all a filter on name can match.
DROP INDEX artifact_by_name;
CREATE INDEX artifact_by_name ON artifact (name) WHERE name IS NOT NULL;

-- +goose Down
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
