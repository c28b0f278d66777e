// File: storage/internal/migrations.h
//
// The schema migrations compiled into the binary from
// src/storage/migrations/<dialect>/<version>_<name>.sql (see
// migrations/embed_migrations.cmake). Both dialects share one numbering:
// version N means the same logical schema on SQLite and PostgreSQL.
#pragma once

#include <span>

namespace conveyor::storage::internal {

enum class Dialect { kSqlite, kPostgres };

struct Migration {
  int version;       // > 0, strictly increasing within a dialect
  const char* name;  // from the file name, e.g. "init"
  const char* sql;   // the whole file; may hold several statements
};

// The migrations of `dialect`, oldest first.
std::span<const Migration> Migrations(Dialect dialect);

}  // namespace conveyor::storage::internal
