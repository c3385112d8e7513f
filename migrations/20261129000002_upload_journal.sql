-- Portable SQL: the same migrations run on SQLite and PostgreSQL.
-- Uploads in flight. An entry is written before a byte flows and removed in
-- the transaction that records the document (or when the upload fails), so
-- an entry that outlives its process marks a file that may be stored at
-- Filestack without a row: the reaper deletes it.
CREATE TABLE upload_journal (
    id           TEXT    PRIMARY KEY NOT NULL,
    owner        TEXT    NOT NULL,
    filename     TEXT    NOT NULL,
    -- Set once Filestack completed the upload.
    handle       TEXT,
    -- Unix microseconds.
    started_at   BIGINT  NOT NULL,
    completed_at BIGINT
);

CREATE INDEX upload_journal_started ON upload_journal (started_at);
