-- 0002_memory_terms (SQLite): each file's index terms, for cross-upload
-- references whose cost does not grow with the session.
--
-- One row per (file, term): the file's most characteristic words (the worker
-- stores them with the file's chunks). A job's references read, per key term
-- of its own file, the newest rows of its session holding that term, through
-- the index below (a bounded range scan, newest first, that never reads the
-- table), and group them by file. Mirrored by postgres/0002_memory_terms.sql.
CREATE TABLE "MemoryTerm" (
  "id"        INTEGER NOT NULL PRIMARY KEY,
  "userId"    TEXT    NOT NULL,
  "sessionId" TEXT    NOT NULL,
  "jobId"     TEXT    NOT NULL REFERENCES "FileUploadJob" ("id") ON DELETE CASCADE,
  "fileId"    TEXT    NOT NULL,
  "term"      TEXT    NOT NULL,
  UNIQUE ("fileId", "term")
);
-- Covering: a reference query reads the index only, never the table.
CREATE INDEX "MemoryTerm_scope_term_idx"
  ON "MemoryTerm" ("userId", "sessionId", "term", "id", "fileId", "jobId");
CREATE INDEX "MemoryTerm_jobId_idx" ON "MemoryTerm" ("jobId");
