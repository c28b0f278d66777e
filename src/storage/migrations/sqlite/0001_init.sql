-- 0001_init (SQLite): job rows and memory chunks.
--
-- Mirrored by postgres/0001_init.sql with the same numbering. Identifiers are
-- double-quoted so the camelCase names of the seed's FileUploadJob model
-- survive PostgreSQL's case folding. Timestamps are epoch milliseconds in a
-- BIGINT: SQLite has no timestamp type and the queue (BullMQ) uses the same
-- unit, so no conversion happens anywhere.

CREATE TABLE "FileUploadJob" (
  "id"           TEXT    NOT NULL PRIMARY KEY,          -- UUID, also the BullMQ job id
  "userId"       TEXT    NOT NULL,
  "sessionId"    TEXT    NOT NULL,
  "status"       TEXT    NOT NULL DEFAULT 'pending'
                 CHECK ("status" IN ('pending', 'processing', 'completed', 'failed')),
  "fileId"       TEXT,                                  -- "file_<uuid>" once processed
  "result"       TEXT,                                  -- JSON text once completed
  "error"        TEXT,                                  -- message once failed
  "createdAt"    BIGINT  NOT NULL,                      -- epoch ms
  "updatedAt"    BIGINT  NOT NULL,                      -- epoch ms, bumped by every change
  "originalName" TEXT    NOT NULL DEFAULT '',           -- client file name, display only
  "mimeType"     TEXT    NOT NULL DEFAULT '',           -- client Content-Type, a hint only
  "size"         BIGINT  NOT NULL DEFAULT 0,            -- bytes stored
  "sha256"       TEXT    NOT NULL DEFAULT '',           -- lower-case hex of the stored bytes
  "storagePath"  TEXT    NOT NULL DEFAULT '',
  "message"      TEXT    NOT NULL DEFAULT '',
  "progress"     INTEGER NOT NULL DEFAULT 0 CHECK ("progress" BETWEEN 0 AND 100),
  "attempts"     INTEGER NOT NULL DEFAULT 0
);

-- Status polling is by primary key; these serve "my jobs" and the reconciler's
-- "pending and older than T, oldest first".
CREATE INDEX "FileUploadJob_userId_idx" ON "FileUploadJob" ("userId");
CREATE INDEX "FileUploadJob_status_createdAt_idx" ON "FileUploadJob" ("status", "createdAt");

-- One row per chunk of extracted text. "id" is the rowid the FTS index refers to.
CREATE TABLE "MemoryChunk" (
  "id"         INTEGER NOT NULL PRIMARY KEY,
  "userId"     TEXT    NOT NULL,
  "sessionId"  TEXT    NOT NULL,
  "jobId"      TEXT    NOT NULL REFERENCES "FileUploadJob" ("id") ON DELETE CASCADE,
  "fileId"     TEXT    NOT NULL,
  "chunkIndex" INTEGER NOT NULL,
  "text"       TEXT    NOT NULL,
  "createdAt"  BIGINT  NOT NULL,                        -- epoch ms
  UNIQUE ("fileId", "chunkIndex")
);
CREATE INDEX "MemoryChunk_jobId_idx" ON "MemoryChunk" ("jobId");
CREATE INDEX "MemoryChunk_userId_sessionId_idx" ON "MemoryChunk" ("userId", "sessionId");

-- Full-text index (SQLite only; PostgreSQL uses a tsvector column instead).
--
-- External content: the text lives once, in "MemoryChunk"; the view adds a
-- "scope" column holding one token per (user, session) pair, so a search
-- intersects the index with the caller's scope instead of ranking every
-- user's rows and filtering afterwards. The token is hex (no tokenizer can
-- split it) and ends in 'z' (no porter rule stems it). It is only an
-- accelerator: searches still filter on "userId" and "sessionId".
CREATE VIEW "MemoryChunkFtsSource" AS
  SELECT "id", "text",
         'u' || hex("userId") || 'x' || hex("sessionId") || 'z' AS "scope"
  FROM "MemoryChunk";

CREATE VIRTUAL TABLE "MemoryChunkFts" USING fts5(
  "text", "scope",
  content = 'MemoryChunkFtsSource', content_rowid = 'id',
  tokenize = 'porter unicode61 remove_diacritics 2'
);

-- Keep the index in step with the table, whoever changes it (including
-- ON DELETE CASCADE from "FileUploadJob").
CREATE TRIGGER "MemoryChunk_fts_insert" AFTER INSERT ON "MemoryChunk" BEGIN
  INSERT INTO "MemoryChunkFts" (rowid, "text", "scope")
  VALUES (new."id", new."text", 'u' || hex(new."userId") || 'x' || hex(new."sessionId") || 'z');
END;

CREATE TRIGGER "MemoryChunk_fts_delete" AFTER DELETE ON "MemoryChunk" BEGIN
  INSERT INTO "MemoryChunkFts" ("MemoryChunkFts", rowid, "text", "scope")
  VALUES ('delete', old."id", old."text", 'u' || hex(old."userId") || 'x' || hex(old."sessionId") || 'z');
END;

CREATE TRIGGER "MemoryChunk_fts_update" AFTER UPDATE ON "MemoryChunk" BEGIN
  INSERT INTO "MemoryChunkFts" ("MemoryChunkFts", rowid, "text", "scope")
  VALUES ('delete', old."id", old."text", 'u' || hex(old."userId") || 'x' || hex(old."sessionId") || 'z');
  INSERT INTO "MemoryChunkFts" (rowid, "text", "scope")
  VALUES (new."id", new."text", 'u' || hex(new."userId") || 'x' || hex(new."sessionId") || 'z');
END;
