-- Portable SQL: the same migrations run on SQLite and PostgreSQL.
-- Resumable uploads (StartUpload). The id is the upload's journal entry's
-- (its storage path is `user-uploads/{owner}/{id}/`), and is the
-- `upload_id` callers resume with. A row records what Filestack has
-- acknowledged, so a stream broken on one replica continues on any other.
CREATE TABLE upload_sessions (
    id              TEXT    PRIMARY KEY NOT NULL,
    owner           TEXT    NOT NULL,
    -- JSON: the checked spec (filename, content type, size, sha256,
    -- request id).
    spec            TEXT    NOT NULL,
    -- JSON: the Filestack multipart session (no credentials).
    multipart       TEXT    NOT NULL,
    part_size       BIGINT  NOT NULL,
    -- JSON: the ETags of parts 1..n, all acknowledged by Filestack.
    parts           TEXT    NOT NULL,
    -- The bytes of those parts: where the next stream must start.
    persisted_bytes BIGINT  NOT NULL,
    -- Hex: the SHA-256 state after `persisted_bytes` bytes.
    sha256_state    TEXT    NOT NULL,
    -- The stream writing now (the latest one wins; an earlier one stops).
    writer          TEXT,
    -- Unix microseconds.
    created_at      BIGINT  NOT NULL,
    touched_at      BIGINT  NOT NULL
);

CREATE INDEX upload_sessions_touched ON upload_sessions (touched_at);
