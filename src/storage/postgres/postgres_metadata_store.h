// File: storage/postgres/postgres_metadata_store.h
//
// The PostgreSQL MetadataStore, over libpq. Reach it through
// OpenMetadataStore("postgres://..." or "postgresql://..."); this header
// exists for the factory and for tests.
//
// Design: a small pool of connections (at most kMaxConnections, opened on
// demand); a call borrows one, blocking while all are busy, for at most
// kAcquireTimeoutMs. Every statement is parameterised (PQexecParams): user
// input never becomes SQL text. Connections are opened with a connect timeout,
// TCP keepalives and a server-side statement_timeout. A connection that broke
// (server restarted, network lost) is dropped, together with the idle ones
// that were opened before it, and new ones are opened on demand: while the
// server is down calls fail with kUnavailable, afterwards they work again.
//
// Errors: connection trouble and timeouts → kUnavailable; unique violation →
// kAlreadyExists; a data exception (bad encoding, value out of range) →
// kInvalidArgument; anything else → kInternal; rows that cannot be read →
// kDataLoss.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "storage/metadata_store.h"

namespace conveyor::storage::postgres {

// `url` is a libpq connection URI ("postgres://user:pass@host:port/db?...").
Result<std::unique_ptr<MetadataStore>> Open(const std::string& url, bool migrate);

// Applies pending migrations (one transaction, under an advisory lock, so
// concurrent starters are safe); the version in force.
Result<int> Migrate(const std::string& url);

// The words of the free-text `query`, as SearchMemory uses them: runs of ASCII
// letters/digits and non-ASCII bytes, deduplicated, at most 32, each cut at 64
// bytes on a code point boundary; words that are not valid UTF-8 are dropped.
// Each becomes one bound parameter of plainto_tsquery, OR'ed with `||`.
// Exposed for tests.
std::vector<std::string> SearchTerms(std::string_view query);

}  // namespace conveyor::storage::postgres
