-- Portable SQL: the same migrations run on SQLite and PostgreSQL.
-- Documents: files stored at Filestack and recorded by filegate.
CREATE TABLE documents (
    id           TEXT    PRIMARY KEY NOT NULL,
    owner        TEXT    NOT NULL,
    handle       TEXT    NOT NULL UNIQUE,
    url          TEXT    NOT NULL,
    filename     TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size_bytes   BIGINT  NOT NULL,
    -- Lowercase hex; NULL for registered handles, whose bytes filegate did not see.
    sha256       TEXT,
    -- The caller's idempotency key, unique per owner.
    request_id   TEXT,
    -- 'upload' or 'register'.
    origin       TEXT    NOT NULL,
    -- Unix microseconds.
    created_at   BIGINT  NOT NULL
);

CREATE UNIQUE INDEX documents_owner_request_id ON documents (owner, request_id)
    WHERE request_id IS NOT NULL;

CREATE INDEX documents_owner_created ON documents (owner, created_at DESC, id DESC);
