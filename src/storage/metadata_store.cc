// OpenMetadataStore / Migrate: pick a backend by the URL's scheme.
#include "storage/metadata_store.h"

#include <string_view>

#include "storage/postgres/postgres_metadata_store.h"
#include "storage/sqlite/sqlite_metadata_store.h"

namespace conveyor::storage {
namespace {

struct ParsedUrl {
  enum class Backend { kSqlite, kPostgres } backend;
  std::string location;  // SQLite: absolute path or ":memory:"; PostgreSQL: the whole URL
};

Result<ParsedUrl> ParseUrl(const std::string& url) {
  constexpr std::string_view kSqlite = "sqlite://";
  std::string_view u = url;
  if (u.starts_with(kSqlite)) {
    std::string_view rest = u.substr(kSqlite.size());
    if (rest == ":memory:") return ParsedUrl{ParsedUrl::Backend::kSqlite, ":memory:"};
    // "sqlite:///abs/path.db": the path is what follows the authority "//".
    if (!rest.starts_with('/') || rest.size() < 2) {
      return InvalidArgument("DATABASE_URL: expected sqlite:///absolute/path.db or sqlite://:memory:");
    }
    if (rest.find('?') != std::string_view::npos) {
      return InvalidArgument("DATABASE_URL: sqlite URLs take no query parameters");
    }
    return ParsedUrl{ParsedUrl::Backend::kSqlite, std::string(rest)};
  }
  if (u.starts_with("postgres://") || u.starts_with("postgresql://")) {
    return ParsedUrl{ParsedUrl::Backend::kPostgres, url};
  }
  return InvalidArgument("DATABASE_URL: unknown scheme (expected sqlite:// or postgres://)");
}

}  // namespace

Result<std::unique_ptr<MetadataStore>> OpenMetadataStore(const std::string& url, bool migrate) {
  auto parsed = ParseUrl(url);
  if (!parsed) return parsed.status();
  switch (parsed->backend) {
    case ParsedUrl::Backend::kSqlite: return sqlite::Open(parsed->location, migrate);
    case ParsedUrl::Backend::kPostgres: return postgres::Open(parsed->location, migrate);
  }
  return Internal("unreachable");
}

Status StoredMeanwhile(const FileMemory& memory) {
  return Status(Errc::kAborted, "memory of " + memory.file_id + " (job " + memory.job_id +
                                    ") was stored by another run at the same time");
}

Result<int> Migrate(const std::string& url) {
  auto parsed = ParseUrl(url);
  if (!parsed) return parsed.status();
  switch (parsed->backend) {
    case ParsedUrl::Backend::kSqlite: return sqlite::Migrate(parsed->location);
    case ParsedUrl::Backend::kPostgres: return postgres::Migrate(parsed->location);
  }
  return Internal("unreachable");
}

}  // namespace conveyor::storage
