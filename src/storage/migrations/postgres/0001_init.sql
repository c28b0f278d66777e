-- 0001_init (PostgreSQL): mirrors sqlite/0001_init.sql.
--
-- Same tables, columns and units (timestamps are epoch ms in BIGINT). Full-text
-- search uses a generated tsvector column with a GIN index in place of FTS5.
-- Not yet exercised: the PostgreSQL backend is not built.

CREATE TABLE "FileUploadJob" (
  "id"           TEXT    NOT NULL PRIMARY KEY,
  "userId"       TEXT    NOT NULL,
  "sessionId"    TEXT    NOT NULL,
  "status"       TEXT    NOT NULL DEFAULT 'pending'
                 CHECK ("status" IN ('pending', 'processing', 'completed', 'failed')),
  "fileId"       TEXT,
  "result"       JSONB,
  "error"        TEXT,
  "createdAt"    BIGINT  NOT NULL,
  "updatedAt"    BIGINT  NOT NULL,
  "originalName" TEXT    NOT NULL DEFAULT '',
  "mimeType"     TEXT    NOT NULL DEFAULT '',
  "size"         BIGINT  NOT NULL DEFAULT 0,
  "sha256"       TEXT    NOT NULL DEFAULT '',
  "storagePath"  TEXT    NOT NULL DEFAULT '',
  "message"      TEXT    NOT NULL DEFAULT '',
  "progress"     INTEGER NOT NULL DEFAULT 0 CHECK ("progress" BETWEEN 0 AND 100),
  "attempts"     INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX "FileUploadJob_userId_idx" ON "FileUploadJob" ("userId");
CREATE INDEX "FileUploadJob_status_createdAt_idx" ON "FileUploadJob" ("status", "createdAt");

CREATE TABLE "MemoryChunk" (
  "id"         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "userId"     TEXT    NOT NULL,
  "sessionId"  TEXT    NOT NULL,
  "jobId"      TEXT    NOT NULL REFERENCES "FileUploadJob" ("id") ON DELETE CASCADE,
  "fileId"     TEXT    NOT NULL,
  "chunkIndex" INTEGER NOT NULL,
  "text"       TEXT    NOT NULL,
  "createdAt"  BIGINT  NOT NULL,
  "tsv"        TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', "text")) STORED,
  UNIQUE ("fileId", "chunkIndex")
);
CREATE INDEX "MemoryChunk_jobId_idx" ON "MemoryChunk" ("jobId");
CREATE INDEX "MemoryChunk_userId_sessionId_idx" ON "MemoryChunk" ("userId", "sessionId");
CREATE INDEX "MemoryChunk_tsv_idx" ON "MemoryChunk" USING GIN ("tsv");
