// The status route of the real `conveyor api` (with the real worker and
// redis-server): a job's status as it moves, and the per-process cache of
// final states (STATUS_CACHE_*, http/internal/status_cache.h): it answers
// only the job's owner, and a row changed behind the API's back (here by
// MetadataStore::MarkCompleted on the same database, as a late run of the
// job writes its completion) shows once the entry's TTL has passed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "service.h"
#include "storage/metadata_store.h"

namespace conveyor::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kText =
    "Status polling: the client asks for its job's state until the job is completed or "
    "failed. Finished jobs are answered from a small cache.\n";

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  s[0] = '\x01';  // never mistaken for text
  return s;
}

std::string StatusOf(const HttpResponse& r) {
  return Service::Json(r).value("/data/status"_json_pointer, std::string("<none>"));
}

// The job's row, changed by another process than the API (this test): a
// late run of the job writes its completion, with `text` as the summary.
void CompleteLate(Service& svc, const std::string& id, const std::string& text) {
  auto store = storage::OpenMetadataStore("sqlite://" + svc.data_dir() + "/conveyor.db", false);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  nlohmann::json result = {{"aiResponse", {{"text", text}}}, {"fileId", "file_" + id}};
  ASSERT_TRUE((*store)->MarkCompleted(id, "file_" + id, result.dump()).ok());
}

TEST(StatusRoute, PendingThenCompletedAndTheCachedAnswerIsTheOwnersOnly) {
  // A TTL far longer than the test: what the API answers after the row
  // changed can only come from its cache.
  Service svc(Env{{"STATUS_CACHE_TTL_MS", "60000"}});
  svc.StartApi();
  std::string id = svc.UploadOk("alice", "s1", {"file", "notes.txt", "text/plain", kText});
  ASSERT_FALSE(id.empty());
  // No worker yet: pending, byte for byte, and again (never cached).
  for (int i = 0; i < 2; ++i) {
    auto r = svc.Status("alice", id);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, R"({"success":true,"data":{"jobId":")" + id + R"(","status":"pending"}})");
  }
  svc.StartWorker();
  auto final = svc.WaitFinal("alice", id, 30s);
  ASSERT_TRUE(final) << svc.worker().Log();
  ASSERT_EQ((*final)["status"], "completed") << final->dump();
  EXPECT_TRUE((*final)["result"]["aiResponse"]["text"].is_string()) << final->dump();
  svc.worker().Stop();

  auto first = svc.Status("alice", id);  // cached by now (WaitFinal read it)
  ASSERT_EQ(first.status, 200);
  CompleteLate(svc, id, "written late");
  // The row has another result; the owner still gets the cached answer, the
  // same bytes as before.
  auto cached = svc.Status("alice", id);
  ASSERT_EQ(cached.status, 200);
  EXPECT_EQ(cached.body, first.body);
  EXPECT_EQ(StatusOf(cached), "completed");

  // Another user gets the very 404 of a job that does not exist, although
  // the job is in the cache.
  auto other = svc.Status("mallory", id);
  auto unknown = svc.Status("mallory", "00000000-0000-4000-8000-000000000001");
  EXPECT_EQ(other.status, 404) << other.body;
  EXPECT_EQ(other.body, unknown.body);
  EXPECT_EQ(unknown.status, 404);
  // And asking did not disturb the owner's entry.
  EXPECT_EQ(svc.Status("alice", id).body, first.body);
}

TEST(StatusRoute, FailedJobCompletedLateShowsCompletedOnceTheTtlHasPassed) {
  constexpr auto kTtl = 1000ms;  // the default STATUS_CACHE_TTL_MS
  Service svc;
  svc.Start();
  std::string id =
      svc.UploadOk("bob", "s1", {"file", "data.txt", "text/plain", RandomBytes(4096, 11)});
  ASSERT_FALSE(id.empty());
  auto final = svc.WaitFinal("bob", id, 30s);
  ASSERT_TRUE(final) << svc.worker().Log();
  ASSERT_EQ((*final)["status"], "failed") << final->dump();
  ASSERT_EQ((*final)["error"], "Invalid file format");
  svc.worker().Stop();

  // Let the entry WaitFinal made expire, so the next read fills it afresh
  // at a known time.
  std::this_thread::sleep_for(kTtl);
  const auto filled_after = Clock::now();
  auto failed = svc.Status("bob", id);
  const auto filled_before = Clock::now();
  ASSERT_EQ(StatusOf(failed), "failed") << failed.body;
  CompleteLate(svc, id, "written late");
  auto still = svc.Status("bob", id);
  if (Clock::now() < filled_after + kTtl) {
    EXPECT_EQ(still.body, failed.body) << "the cached failure was not used";
  }

  std::optional<Clock::time_point> seen;
  ASSERT_TRUE(Eventually(
      [&] {
        auto r = svc.Status("bob", id);
        if (StatusOf(r) != "completed") return false;
        seen = Clock::now();
        EXPECT_EQ(
            Service::Json(r).value("/data/result/aiResponse/text"_json_pointer, std::string()),
            "written late")
            << r.body;
        return true;
      },
      5s))
      << "still failed 5 s after the row was completed";
  // Not before the entry expired, and not much after.
  EXPECT_GE(*seen - filled_after, kTtl - 2ms);  // the API counts whole ms
  EXPECT_LT(*seen - filled_before, kTtl + 500ms);
}

}  // namespace
}  // namespace conveyor::testing
