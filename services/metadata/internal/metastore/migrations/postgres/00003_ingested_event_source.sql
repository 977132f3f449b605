-- +goose Up
-- A source event is identified by its CloudEvent source and id (CloudEvents 1.0: "source + id
-- MUST be unique for each distinct event"), not by the id alone. Rows recorded before this
-- migration keep ce_source = '' (their source was not kept): the ingest treats such a row as
-- covering its id from every source, so an event applied before the upgrade and redelivered
-- after it is still not applied twice. New rows always carry a non-empty source.
ALTER TABLE ingested_event ADD COLUMN ce_source TEXT NOT NULL DEFAULT '';
ALTER TABLE ingested_event DROP CONSTRAINT ingested_event_pkey;
ALTER TABLE ingested_event ADD PRIMARY KEY (ce_source, ce_id);

-- +goose Down
-- Keeps one row per id (the first recorded) so the id-only key can be restored.
DELETE FROM ingested_event a USING ingested_event b
 WHERE a.ce_id = b.ce_id AND (a.received_ms, a.ce_source) > (b.received_ms, b.ce_source);
ALTER TABLE ingested_event DROP CONSTRAINT ingested_event_pkey;
ALTER TABLE ingested_event DROP COLUMN ce_source;
ALTER TABLE ingested_event ADD PRIMARY KEY (ce_id);
