// End-to-end on PostgreSQL: the real `conveyor api` and `conveyor worker`
// with DATABASE_URL=postgres://… against a real PostgreSQL server (and a real
// redis-server), both started by the test on free ports.
#include <gtest/gtest.h>

#include <string>

#include "service.h"

namespace conveyor::testing {
namespace {

using namespace std::chrono_literals;

TEST(PostgresService, UploadCompletesAndMemoryIsSearchable) {
  PostgresServer pg;
  std::string url = pg.CreateDatabase("conveyor_e2e");
  Service svc({{"DATABASE_URL", url}});
  svc.Start();  // `api` applies the PostgreSQL migrations on start
  const std::string text =
      "Conveyor stores job rows in PostgreSQL when DATABASE_URL says so. The worker extracts "
      "this text and keeps it as searchable memory; kangaroos are mentioned for the search.\n";
  std::string id = svc.UploadOk("alice", "s1", {"file", "notes.txt", "text/plain", text});
  ASSERT_FALSE(id.empty()) << svc.api().Log();
  auto final = svc.WaitFinal("alice", id, 30s);
  ASSERT_TRUE(final) << svc.api().Log() << svc.worker().Log();
  EXPECT_EQ((*final)["status"], "completed") << final->dump();
  std::string file_id = (*final)["result"]["fileId"];

  // The row lives in PostgreSQL.
  std::string status = pg.Psql("SELECT \"status\" FROM \"FileUploadJob\" WHERE \"id\" = '" + id + "'",
                               "conveyor_e2e");
  EXPECT_EQ(status, "completed\n");

  // Stemmed search ("kangaroo" finds "kangaroos") of the caller's session only.
  auto search = Request(svc.port(), "GET", "/api/chat/memory/search?session_id=s1&q=kangaroo&limit=5",
                        {{"Authorization", "Bearer " + Service::Token("alice")}});
  ASSERT_EQ(search.status, 200) << search.body;
  auto results = Service::Json(search)["data"]["results"];
  ASSERT_FALSE(results.empty()) << search.body;
  EXPECT_EQ(results[0]["fileId"], file_id);
  auto other = Request(svc.port(), "GET", "/api/chat/memory/search?session_id=s1&q=kangaroo",
                       {{"Authorization", "Bearer " + Service::Token("mallory")}});
  ASSERT_EQ(other.status, 200);
  EXPECT_TRUE(Service::Json(other)["data"]["results"].empty()) << other.body;
}

}  // namespace
}  // namespace conveyor::testing
