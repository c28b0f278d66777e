// Memory search and cross-upload references over a large index.
//
//   memory_scale [sqlite|postgres|both]    (default both)
//
// Builds an index of SCALE_CHUNKS chunks (default 1,000,000) from SCALE_USERS
// users (10,000), one of whose sessions holds SCALE_BIG_FILES files (10,000),
// through the store's own API (InsertJob + StoreFileMemory, index terms from
// worker::IndexTerms), on SQLite (a file in a temp dir) and on a real
// PostgreSQL server (tests/support starts one on a free port, fsync off).
// Then times, on the same store:
//   search_big_common   a search of a word held by most files, in the big session
//   search_big_rare     a search of a word held by a few files, in the big session
//   search_small        a search in a small session of another user
//   references_big      FindReferences for a new file of the big session
// each SCALE_QUERIES (200) times with varying words: median, p99 and max in ms.
// Prints the query plans (EXPLAIN QUERY PLAN / EXPLAIN) so one can check that
// the scope indexes are used, and one line per figure:
//   memory_scale db=sqlite chunks=1000000 ... op=search_big_common p50_ms=... p99_ms=... max_ms=...
//
// Text: chunks of SCALE_WORDS (60) words drawn from a 20,000-word invented
// vocabulary with a skewed (cubic) distribution, so a few words are in almost
// every chunk and most are rare.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/ids.h"
#include "storage/metadata_store.h"
#include "test_support.h"
#include "worker/references.h"

namespace {

using namespace conveyor;
using Clock = std::chrono::steady_clock;

int64_t EnvInt(const char* name, int64_t def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoll(v) : def;
}

struct Params {
  int64_t chunks = EnvInt("SCALE_CHUNKS", 1000000);
  int64_t users = EnvInt("SCALE_USERS", 10000);
  int64_t big_files = EnvInt("SCALE_BIG_FILES", 10000);
  int64_t chunks_per_file = EnvInt("SCALE_CHUNKS_PER_FILE", 10);
  int64_t words = EnvInt("SCALE_WORDS", 60);
  int64_t queries = EnvInt("SCALE_QUERIES", 200);
  int threads = static_cast<int>(EnvInt("SCALE_THREADS", 4));
};

// Invented words: three or four syllables, letters only, never a stop word.
std::vector<std::string> Vocabulary(size_t n) {
  static const char* kSyl[] = {"ka", "lo", "mi", "nu", "ra", "se", "ti", "vo", "zu", "pe",
                               "ba", "do", "fi", "gu", "ho", "je", "ly", "qua", "re", "sy"};
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; out.size() < n; ++i) {
    std::string w;
    size_t x = i;
    for (int k = 0; k < 4; ++k) {
      w += kSyl[x % 20];
      x /= 20;
      if (k >= 2 && x == 0) break;
    }
    out.push_back(w + "x");
  }
  return out;
}

class TextGen {
 public:
  TextGen(const std::vector<std::string>& vocab, uint64_t seed) : vocab_(vocab), rng_(seed) {}
  // Index of a word: cubic skew towards the first words.
  size_t Pick() {
    double u = dist_(rng_);
    return static_cast<size_t>(u * u * u * static_cast<double>(vocab_.size() - 1));
  }
  std::string Chunk(int64_t words) {
    std::string s;
    for (int64_t i = 0; i < words; ++i) {
      if (i > 0) s += (i % 12 == 0) ? ". " : " ";
      s += vocab_[Pick()];
    }
    s += '.';
    return s;
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  const std::vector<std::string>& vocab_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> dist_{0.0, 1.0};
};

// One file: its row and its memory. Returns false on an error (printed).
bool AddFile(storage::MetadataStore& store, TextGen& gen, const std::string& user,
             const std::string& session, int64_t chunks, int64_t words) {
  storage::NewJob j;
  j.id = NewUuid();
  j.user_id = user;
  j.session_id = session;
  j.original_name = "doc.txt";
  j.mime_type = "text/plain";
  j.size_bytes = 1;
  j.sha256_hex = std::string(64, 'a');
  j.storage_path = "/data/" + j.id;
  if (auto r = store.InsertJob(j); !r) {
    std::fprintf(stderr, "insert: %s\n", r.status().ToString().c_str());
    return false;
  }
  storage::FileMemory m{user, session, j.id, "file_" + j.id, {}, {}};
  std::string all;
  for (int64_t c = 0; c < chunks; ++c) {
    m.chunks.push_back({static_cast<int>(c), gen.Chunk(words)});
    all += m.chunks.back().text;
    all += '\n';
  }
  m.terms = worker::IndexTerms(all);
  if (auto r = store.StoreFileMemory(m); !r) {
    std::fprintf(stderr, "store: %s\n", r.status().ToString().c_str());
    return false;
  }
  return true;
}

std::string UserName(int64_t i) { return "user" + std::to_string(i); }

// Builds the index: user 0 session "big" holds big_files files; the other
// chunks are spread over users 1..users-1, one session each.
bool Load(storage::MetadataStore& store, const Params& p, const std::vector<std::string>& vocab) {
  const int64_t big_chunks = p.big_files * p.chunks_per_file;
  const int64_t rest_files = std::max<int64_t>(0, (p.chunks - big_chunks) / p.chunks_per_file);
  const int64_t total_files = p.big_files + rest_files;
  std::atomic<int64_t> next{0};
  std::atomic<bool> ok{true};
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < p.threads; ++t) {
    threads.emplace_back([&, t] {
      TextGen gen(vocab, 1000 + static_cast<uint64_t>(t));
      for (;;) {
        int64_t i = next.fetch_add(1);
        if (i >= total_files || !ok) return;
        bool good;
        if (i < p.big_files) {
          good = AddFile(store, gen, UserName(0), "big", p.chunks_per_file, p.words);
        } else {
          int64_t user = 1 + (i - p.big_files) % std::max<int64_t>(1, p.users - 1);
          good = AddFile(store, gen, UserName(user), "s", p.chunks_per_file, p.words);
        }
        if (!good) ok = false;
        if (i > 0 && i % 20000 == 0) {
          double s = std::chrono::duration<double>(Clock::now() - t0).count();
          std::fprintf(stderr, "  loaded %lld/%lld files in %.0f s\n", static_cast<long long>(i),
                       static_cast<long long>(total_files), s);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("loaded files=%lld chunks=%lld in %.1f s\n", static_cast<long long>(total_files),
              static_cast<long long>(total_files * p.chunks_per_file), s);
  return ok;
}

struct Figures {
  double p50, p99, max;
};

template <class Fn>
Figures Time(int64_t n, Fn fn) {
  std::vector<double> ms;
  for (int64_t i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    fn(i);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
  return {at(0.5), at(0.99), ms.back()};
}

void Run(const std::string& db, storage::MetadataStore& store, const Params& p,
         const std::vector<std::string>& vocab) {
  TextGen gen(vocab, 7);
  size_t hits = 0;
  auto report = [&](const char* op, Figures f) {
    std::printf("memory_scale db=%s chunks=%lld users=%lld big_session_files=%lld op=%s"
                " p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
                db.c_str(), static_cast<long long>(p.chunks), static_cast<long long>(p.users),
                static_cast<long long>(p.big_files), op, f.p50, f.p99, f.max);
    std::fflush(stdout);
  };
  // Common words are the first of the vocabulary, rare ones far down.
  report("search_big_common", Time(p.queries, [&](int64_t i) {
           auto r = store.SearchMemory(UserName(0), "big", vocab[static_cast<size_t>(i % 5)], 10);
           if (r) hits += r->size();
         }));
  report("search_big_rare", Time(p.queries, [&](int64_t i) {
           size_t w = vocab.size() / 2 + static_cast<size_t>(i) * 37 % (vocab.size() / 2);
           auto r = store.SearchMemory(UserName(0), "big", vocab[w], 10);
           if (r) hits += r->size();
         }));
  report("search_big_three_words", Time(p.queries, [&](int64_t) {
           std::string q = vocab[gen.Pick()] + " " + vocab[gen.Pick()] + " " + vocab[gen.Pick()];
           auto r = store.SearchMemory(UserName(0), "big", q, 10);
           if (r) hits += r->size();
         }));
  report("search_small", Time(p.queries, [&](int64_t i) {
           auto r = store.SearchMemory(UserName(1 + i % std::max<int64_t>(1, p.users - 1)), "s",
                                       vocab[static_cast<size_t>(i % 50)], 10);
           if (r) hits += r->size();
         }));
  std::vector<std::vector<std::string>> term_sets;
  for (int64_t i = 0; i < p.queries; ++i) {
    std::string all;
    for (int64_t c = 0; c < p.chunks_per_file; ++c) all += gen.Chunk(p.words) + "\n";
    term_sets.push_back(worker::IndexTerms(all));
  }
  size_t refs = 0;
  report("references_big", Time(p.queries, [&](int64_t i) {
           auto r = worker::FindReferences(store, UserName(0), "big", "file_new",
                                           term_sets[static_cast<size_t>(i)]);
           if (r) refs += r->size();
         }));
  std::printf("memory_scale db=%s search_hits=%zu references=%zu\n", db.c_str(), hits, refs);
}

void SqlitePlans(const std::string& path, const std::vector<std::string>& vocab) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return;
  auto plan = [&](const std::string& sql) {
    std::printf("plan (sqlite): %s\n", sql.c_str());
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &s, nullptr) != SQLITE_OK) {
      std::printf("  (cannot explain: %s)\n", sqlite3_errmsg(db));
      return;
    }
    while (sqlite3_step(s) == SQLITE_ROW) {
      std::printf("  %s\n", reinterpret_cast<const char*>(sqlite3_column_text(s, 3)));
    }
    sqlite3_finalize(s);
  };
  plan("SELECT rowid FROM \"MemoryChunkFts\" WHERE \"MemoryChunkFts\" MATCH"
       " 'scope : \"u00x00z\" AND text : (\"" + vocab[0] + "\")' ORDER BY rowid DESC LIMIT 1000");
  plan("SELECT \"fileId\" FROM \"MemoryTerm\" WHERE \"userId\" = 'user0' AND \"sessionId\" = 'big'"
       " AND \"term\" = '" + vocab[0] + "' AND \"fileId\" <> 'x' ORDER BY \"id\" DESC LIMIT 200");
  sqlite3_close(db);
}

void PostgresPlans(conveyor::testing::PostgresServer& pg, const std::string& dbname,
                   const std::vector<std::string>& vocab) {
  for (const std::string& word : {vocab[0], vocab[vocab.size() / 2 + 37]}) {
    std::string q = "plainto_tsquery('conveyor_search', '" + word + "')";
    std::string search =
        "EXPLAIN (ANALYZE, COSTS OFF) WITH cand AS (SELECT c.\"id\", ts_rank(c.\"tsv\", " + q +
        ", 1) AS rank FROM \"MemoryChunk\" c WHERE c.\"userId\" = 'user0' AND"
        " c.\"sessionId\" = 'big' AND c.\"tsv\" @@ (" + q + ") ORDER BY c.\"id\" DESC LIMIT 1000)"
        " SELECT \"id\" FROM cand ORDER BY rank DESC LIMIT 10";
    std::printf("plan (postgres): search of '%s'\n%s\n", word.c_str(), pg.Psql(search, dbname).c_str());
  }
  std::string terms =
      "EXPLAIN (ANALYZE, COSTS OFF) SELECT \"fileId\" FROM \"MemoryTerm\" WHERE \"userId\" = 'user0'"
      " AND \"sessionId\" = 'big' AND \"term\" = '" + vocab[0] +
      "' AND \"fileId\" <> 'x' ORDER BY \"id\" DESC LIMIT 200";
  std::printf("plan (postgres): one term of the references\n%s\n", pg.Psql(terms, dbname).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = argc > 1 ? argv[1] : "both";
  Params p;
  const auto vocab = Vocabulary(20000);
  if (which == "sqlite" || which == "both") {
    conveyor::testing::TempDir dir;
    // SCALE_SQLITE_PATH: build the index there and keep it (to look at later).
    const char* keep = std::getenv("SCALE_SQLITE_PATH");
    std::string path = keep != nullptr && *keep != '\0' ? keep : dir.path() + "/scale.db";
    auto store = storage::OpenMetadataStore("sqlite://" + path, true);
    if (!store) {
      std::fprintf(stderr, "sqlite: %s\n", store.status().ToString().c_str());
      return 1;
    }
    if (!Load(**store, p, vocab)) return 1;
    SqlitePlans(path, vocab);
    Run("sqlite", **store, p, vocab);
  }
  if (which == "postgres" || which == "both") {
    conveyor::testing::PostgresServer pg;
    std::string url = pg.CreateDatabase("scale");
    auto store = storage::OpenMetadataStore(url, true);
    if (!store) {
      std::fprintf(stderr, "postgres: %s\n", store.status().ToString().c_str());
      return 1;
    }
    if (!Load(**store, p, vocab)) return 1;
    pg.Psql("VACUUM ANALYZE", "scale");
    PostgresPlans(pg, "scale", vocab);
    Run("postgres", **store, p, vocab);
  }
  return 0;
}
