-- Portable SQL: the same migrations run on SQLite and PostgreSQL.
-- What the reaper needs to settle an upload whose `multipart/complete` may
-- have stored a file without the gateway learning its handle (a lost
-- answer, a crash, a cancelled call). Each upload stores its file under a
-- storage path of its own, `user-uploads/{owner}/{id}/`, so Filestack's
-- fp.upload webhook for that file names the entry.
-- Unix microseconds; set just before `complete` is first sent.
ALTER TABLE upload_journal ADD COLUMN completing_at BIGINT;
-- JSON: what `complete` needs (upload id, parts), without credentials, so
-- the reaper can send it again; NULL once Filestack refused to answer it.
ALTER TABLE upload_journal ADD COLUMN complete_request TEXT;
-- Unix microseconds; set when the call gave up on the upload: no running
-- call owns the entry any more, and the reaper may settle it at once.
ALTER TABLE upload_journal ADD COLUMN abandoned_at BIGINT;
