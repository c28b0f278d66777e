// File: storage/sqlite/sqlite_metadata_store.h
//
// The SQLite MetadataStore. Reach it through OpenMetadataStore("sqlite://...");
// this header exists for the factory and for tests.
//
// Design: WAL mode, so readers never block the writer nor each other. Writes
// go through one connection behind a mutex (SQLite admits one writer at a time
// anyway; queuing in-process is cheaper than spinning on SQLITE_BUSY), reads
// borrow a connection from a small pool. ":memory:" uses the single writer
// connection for everything, since a private in-memory database is per
// connection. synchronous=NORMAL: a commit survives a process crash; a power
// loss may drop the last commits, never corrupt the file. busy_timeout covers
// other processes (api and worker share the file); past it, kUnavailable.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "storage/metadata_store.h"

namespace conveyor::storage::sqlite {

// `path` is an absolute file path or ":memory:". The parent directory of a
// file is created if missing.
Result<std::unique_ptr<MetadataStore>> Open(const std::string& path, bool migrate);

// Applies pending migrations to the database at `path`; the version in force.
Result<int> Migrate(const std::string& path);

// The FTS5 MATCH expression for the free-text `query`, restricted to `text`
// column: every word becomes a double-quoted string (so no character of the
// input is FTS syntax), the words are OR'ed (bm25 ranks rows matching more of
// them first). Empty when the query holds no word. Exposed for tests.
std::string BuildFtsMatch(std::string_view query);

}  // namespace conveyor::storage::sqlite
