#include "http/internal/status_cache.h"

#include <gtest/gtest.h>

#include <string>

#include "fakes.h"

namespace conveyor::http {
namespace {

using Found = StatusCache::Found;
using testing::FakeClock;

constexpr std::string_view kJob = "4b0c1e0a-1111-4222-8333-444455556666";

std::string Id(int i) {
  std::string s = "00000000-0000-4000-8000-000000000000";
  std::string n = std::to_string(i);
  s.replace(s.size() - n.size(), n.size(), n);
  return s;
}

StatusCache::Options Opts(size_t entries, size_t bytes, int64_t ttl_ms) {
  StatusCache::Options o;
  o.max_entries = entries;
  o.max_bytes = bytes;
  o.ttl_ms = ttl_ms;
  return o;
}

TEST(StatusCache, HitForTheOwnerOtherOwnerForAnyoneElse) {
  FakeClock clock;
  StatusCache cache(Opts(10, 1 << 20, 1000), clock);
  std::string body = "unchanged";
  EXPECT_EQ(cache.Lookup(kJob, "alice", &body), Found::kMiss);
  EXPECT_EQ(body, "unchanged");
  cache.Insert(kJob, "alice", R"({"success":true})");
  EXPECT_EQ(cache.Lookup(kJob, "alice", &body), Found::kHit);
  EXPECT_EQ(body, R"({"success":true})");
  body = "unchanged";
  EXPECT_EQ(cache.Lookup(kJob, "mallory", &body), Found::kOtherOwner);
  EXPECT_EQ(body, "unchanged");
  // An owner whose id is a prefix of the real owner's is someone else too.
  EXPECT_EQ(cache.Lookup(kJob, "alic", &body), Found::kOtherOwner);
  EXPECT_EQ(cache.Lookup(kJob, "", &body), Found::kOtherOwner);
  EXPECT_EQ(cache.Lookup(Id(1), "alice", &body), Found::kMiss);
}

TEST(StatusCache, EntryLivesExactlyTtl) {
  FakeClock clock;
  StatusCache cache(Opts(10, 1 << 20, 1000), clock);
  std::string body;
  cache.Insert(kJob, "alice", "b");
  clock.Advance(999);
  EXPECT_EQ(cache.Lookup(kJob, "alice", &body), Found::kHit);
  clock.Advance(1);
  EXPECT_EQ(cache.Lookup(kJob, "alice", &body), Found::kMiss);
  // The expired entry is gone, not only hidden.
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
  // Once expired it says nothing about ownership either.
  cache.Insert(kJob, "alice", "b");
  clock.Advance(1000);
  EXPECT_EQ(cache.Lookup(kJob, "mallory", &body), Found::kMiss);
}

TEST(StatusCache, LookupsDoNotExtendTheTtlButInsertRenewsIt) {
  FakeClock clock;
  StatusCache cache(Opts(10, 1 << 20, 1000), clock);
  std::string body;
  cache.Insert(kJob, "alice", "first");
  for (int i = 0; i < 9; ++i) {
    clock.Advance(100);
    ASSERT_EQ(cache.Lookup(kJob, "alice", &body), Found::kHit) << i;
  }
  clock.Advance(100);  // 1000 ms after the insert, however often it was read
  EXPECT_EQ(cache.Lookup(kJob, "alice", &body), Found::kMiss);
  cache.Insert(kJob, "alice", "second");
  clock.Advance(999);
  EXPECT_EQ(cache.Lookup(kJob, "alice", &body), Found::kHit);
  EXPECT_EQ(body, "second");
  EXPECT_EQ(cache.size(), 1u);
}

TEST(StatusCache, InsertReplacesTheEntryOfTheSameJob) {
  FakeClock clock;
  StatusCache cache(Opts(10, 1 << 20, 1000), clock);
  std::string body;
  cache.Insert(kJob, "alice", "old");
  cache.Insert(kJob, "alice", "newer body");
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), StatusCache::EntryBytes(kJob, "alice", "newer body"));
  ASSERT_EQ(cache.Lookup(kJob, "alice", &body), Found::kHit);
  EXPECT_EQ(body, "newer body");
}

TEST(StatusCache, CountBoundEvictsTheLeastRecentlyUsed) {
  FakeClock clock;
  StatusCache cache(Opts(3, 1 << 20, 1000), clock);
  std::string body;
  cache.Insert(Id(1), "u", "1");
  cache.Insert(Id(2), "u", "2");
  cache.Insert(Id(3), "u", "3");
  ASSERT_EQ(cache.Lookup(Id(1), "u", &body), Found::kHit);  // 2 is now the oldest
  cache.Insert(Id(4), "u", "4");
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.Lookup(Id(2), "u", &body), Found::kMiss);
  EXPECT_EQ(cache.Lookup(Id(1), "u", &body), Found::kHit);
  EXPECT_EQ(cache.Lookup(Id(3), "u", &body), Found::kHit);
  EXPECT_EQ(cache.Lookup(Id(4), "u", &body), Found::kHit);
  for (int i = 5; i < 100; ++i) cache.Insert(Id(i), "u", "x");
  EXPECT_EQ(cache.size(), 3u);
}

TEST(StatusCache, ByteBoundEvictsAndRefusesOversizedEntries) {
  FakeClock clock;
  const std::string body100(100, 'b');
  const size_t one = StatusCache::EntryBytes(Id(1), "u", body100);
  StatusCache cache(Opts(1000, 2 * one + one / 2, 1000), clock);  // room for two
  std::string body;
  cache.Insert(Id(1), "u", body100);
  cache.Insert(Id(2), "u", body100);
  EXPECT_EQ(cache.bytes(), 2 * one);
  cache.Insert(Id(3), "u", body100);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_LE(cache.bytes(), 2 * one + one / 2);
  EXPECT_EQ(cache.Lookup(Id(1), "u", &body), Found::kMiss);
  EXPECT_EQ(cache.Lookup(Id(3), "u", &body), Found::kHit);
  // Larger than the whole budget: not kept, and nothing else is evicted for it.
  cache.Insert(Id(4), "u", std::string(3 * one, 'x'));
  EXPECT_EQ(cache.Lookup(Id(4), "u", &body), Found::kMiss);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.Lookup(Id(2), "u", &body), Found::kHit);
  // Nor does an oversized replacement keep the old answer of that job.
  cache.Insert(Id(2), "u", std::string(3 * one, 'x'));
  EXPECT_EQ(cache.Lookup(Id(2), "u", &body), Found::kMiss);
  EXPECT_EQ(cache.bytes(), one);
}

TEST(StatusCache, ZeroInAnyBoundDisablesIt) {
  FakeClock clock;
  for (auto o : {Opts(0, 1 << 20, 1000), Opts(10, 0, 1000), Opts(10, 1 << 20, 0)}) {
    StatusCache cache(o, clock);
    EXPECT_FALSE(cache.enabled());
    cache.Insert(kJob, "alice", "b");
    std::string body;
    EXPECT_EQ(cache.Lookup(kJob, "alice", &body), Found::kMiss);
    EXPECT_EQ(cache.Lookup(kJob, "mallory", &body), Found::kMiss);
    EXPECT_EQ(cache.size(), 0u);
  }
}

}  // namespace
}  // namespace conveyor::http
