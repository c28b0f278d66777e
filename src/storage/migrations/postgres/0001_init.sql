-- 0001_init (PostgreSQL): mirrors sqlite/0001_init.sql.
--
-- Same tables, columns and units (timestamps are epoch ms in BIGINT; "result"
-- is TEXT, kept byte for byte as SQLite keeps it). Full-text search uses a
-- generated tsvector column with a GIN index in place of FTS5, under a text
-- search configuration that behaves like SQLite's 'porter unicode61
-- remove_diacritics 2': English stemming, accents folded, and no stop words
-- (every word a person types can be found, "or" and "the" included).
-- Applied in one transaction under an advisory lock (see
-- storage/postgres/postgres_metadata_store.cc).

-- unaccent ships with the server (trusted: a database owner may create it).
CREATE EXTENSION IF NOT EXISTS unaccent;

-- The Snowball English stemmer without its stop-word list.
CREATE TEXT SEARCH DICTIONARY conveyor_english_stem (TEMPLATE = snowball, Language = english);
CREATE TEXT SEARCH CONFIGURATION conveyor_search (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION conveyor_search
  ALTER MAPPING FOR asciiword, asciihword, hword_asciipart WITH conveyor_english_stem;
ALTER TEXT SEARCH CONFIGURATION conveyor_search
  ALTER MAPPING FOR word, hword, hword_part WITH unaccent, conveyor_english_stem;

CREATE TABLE "FileUploadJob" (
  "id"           TEXT    NOT NULL PRIMARY KEY,
  "userId"       TEXT    NOT NULL,
  "sessionId"    TEXT    NOT NULL,
  "status"       TEXT    NOT NULL DEFAULT 'pending'
                 CHECK ("status" IN ('pending', 'processing', 'completed', 'failed')),
  "fileId"       TEXT,
  "result"       TEXT,
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
  "tsv"        TSVECTOR GENERATED ALWAYS AS (to_tsvector('conveyor_search'::regconfig, "text")) STORED,
  UNIQUE ("fileId", "chunkIndex")
);
CREATE INDEX "MemoryChunk_jobId_idx" ON "MemoryChunk" ("jobId");
CREATE INDEX "MemoryChunk_userId_sessionId_idx" ON "MemoryChunk" ("userId", "sessionId");
CREATE INDEX "MemoryChunk_tsv_idx" ON "MemoryChunk" USING GIN ("tsv");
