-- 0002_memory_terms (PostgreSQL): each file's index terms, and a scope index
-- that serves a session's chunks newest first. Mirrors sqlite/0002.
--
-- "MemoryTerm": one row per (file, term), the file's most characteristic
-- words; references read the newest rows of the session per term through
-- "MemoryTerm_scope_term_idx" (a bounded index range scan) and group them by
-- file.
--
-- "MemoryChunk_scope_id_idx" replaces the (userId, sessionId) index: with the
-- id last, a search can walk the session's chunks newest first and stop after
-- a bounded number of candidates instead of ranking every match.
CREATE TABLE "MemoryTerm" (
  "id"        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "userId"    TEXT   NOT NULL,
  "sessionId" TEXT   NOT NULL,
  "jobId"     TEXT   NOT NULL REFERENCES "FileUploadJob" ("id") ON DELETE CASCADE,
  "fileId"    TEXT   NOT NULL,
  "term"      TEXT   NOT NULL,
  UNIQUE ("fileId", "term")
);
CREATE INDEX "MemoryTerm_scope_term_idx" ON "MemoryTerm" ("userId", "sessionId", "term", "id")
  INCLUDE ("fileId", "jobId");
CREATE INDEX "MemoryTerm_jobId_idx" ON "MemoryTerm" ("jobId");

CREATE INDEX "MemoryChunk_scope_id_idx" ON "MemoryChunk" ("userId", "sessionId", "id");
DROP INDEX "MemoryChunk_userId_sessionId_idx";
