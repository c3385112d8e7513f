-- Portable SQL: the same migrations run on SQLite and PostgreSQL.
-- Events: every accepted Filestack webhook delivery, in the order received.
CREATE TABLE events (
    -- Assigned by filegate as MAX(id) + 1 while inserts are serialised
    -- (BEGIN IMMEDIATE on SQLite, a transaction-level advisory lock on
    -- PostgreSQL), so ids become visible in increasing order with no gaps.
    id           BIGINT  PRIMARY KEY NOT NULL,
    -- Filestack's delivery id; a retried delivery is stored once.
    delivery_id  TEXT    NOT NULL UNIQUE,
    -- e.g. 'fp.upload', 'fp.overwrite', 'fp.delete'.
    action       TEXT    NOT NULL,
    -- The file's handle (last path segment of text.url); NULL when the
    -- delivery names no file.
    handle       TEXT,
    -- The document the event is about, when one was known.
    document_id  TEXT,
    -- Who may watch the event; NULL: nobody (a handle filegate cannot place).
    owner        TEXT,
    -- The delivery's raw JSON body, exactly as signed.
    payload      TEXT    NOT NULL,
    -- Unix microseconds.
    received_at  BIGINT  NOT NULL
);

CREATE INDEX events_owner_id ON events (owner, id);

CREATE INDEX events_handle_id ON events (handle, id);
