-- +goose Up
-- CloudEvent ids applied by the event ingest, written in the same transaction as the records
-- they produced, so a redelivered or replayed event changes nothing.
CREATE TABLE ingested_event (
    ce_id       TEXT    PRIMARY KEY,
    type        TEXT    NOT NULL,
    received_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE ingested_event;
