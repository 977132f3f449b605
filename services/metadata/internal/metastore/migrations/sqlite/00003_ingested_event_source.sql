-- +goose Up
-- A source event is identified by its CloudEvent source and id (CloudEvents 1.0: "source + id
-- MUST be unique for each distinct event"), not by the id alone. Rows recorded before this
-- migration keep ce_source = '' (their source was not kept): the ingest treats such a row as
-- covering its id from every source, so an event applied before the upgrade and redelivered
-- after it is still not applied twice. New rows always carry a non-empty source.
CREATE TABLE ingested_event_v3 (
    ce_source   TEXT    NOT NULL,
    ce_id       TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (ce_source, ce_id)
) WITHOUT ROWID;
INSERT INTO ingested_event_v3 (ce_source, ce_id, type, received_ms)
    SELECT '', ce_id, type, received_ms FROM ingested_event;
DROP TABLE ingested_event;
ALTER TABLE ingested_event_v3 RENAME TO ingested_event;

-- +goose Down
CREATE TABLE ingested_event_v2 (
    ce_id       TEXT    PRIMARY KEY,
    type        TEXT    NOT NULL,
    received_ms INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO ingested_event_v2 (ce_id, type, received_ms)
    SELECT ce_id, type, MIN(received_ms) FROM ingested_event GROUP BY ce_id;
DROP TABLE ingested_event;
ALTER TABLE ingested_event_v2 RENAME TO ingested_event;
