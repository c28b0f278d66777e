// The pure parts of the failover policy. The failover itself (real master,
// replica and sentinels) is tests/sentinel/sentinel_failover.sh.
#include "queue/internal/failover.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "queue/internal/redis_connection.h"

namespace conveyor::queue::internal {
namespace {

using Clock = ReconnectBackoff::Clock;
using std::chrono::milliseconds;

TEST(Failover, ErrorRepliesThatMeanNoMasterNow) {
  for (const char* e :
       {"READONLY You can't write against a read only replica.",
        "READONLY You can't write against a read only replica. script: 67ed, on @user_script:1.",
        "LOADING Redis is loading the dataset in memory",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "UNBLOCKED force unblock from blocking operation, instance state changed",
        "ERR Error running script (call to f_1): @user_script:1: -READONLY You can't write"}) {
    EXPECT_TRUE(IsFailoverError(e)) << e;
  }
  for (const char* e : {"NOSCRIPT No matching script", "ERR wrong number of arguments",
                        "WRONGTYPE Operation against a key", "NOAUTH Authentication required.",
                        "ERR unknown command 'READONLY'", ""}) {
    EXPECT_FALSE(IsFailoverError(e)) << e;
  }
}

TEST(Failover, BackoffDoublesToItsCapAndStartsOverAfterASuccess) {
  ReconnectBackoff b;
  Clock::time_point t{};
  EXPECT_TRUE(b.TryStart(t));  // the first attempt is immediate
  EXPECT_FALSE(b.TryStart(t + milliseconds(kReconnectBackoffMinMs - 1)));
  int64_t wait = kReconnectBackoffMinMs;
  t += milliseconds(wait);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.TryStart(t));
    wait = std::min(wait * 2, kReconnectBackoffMaxMs);
    EXPECT_FALSE(b.TryStart(t + milliseconds(wait - 1))) << i;
    t += milliseconds(wait);
  }
  EXPECT_EQ(wait, kReconnectBackoffMaxMs);  // bounded
  b.Succeeded();
  ASSERT_TRUE(b.TryStart(t));
  EXPECT_TRUE(b.TryStart(t + milliseconds(kReconnectBackoffMinMs)));
}

RedisReply Role(const char* role) {
  RedisReply r;
  r.type = RedisReply::Type::kArray;
  RedisReply first;
  first.type = RedisReply::Type::kString;
  first.str = role;
  r.elements.push_back(first);
  return r;
}

TEST(Failover, OnlyAMasterPassesTheRoleCheck) {
  RedisAddress at{"10.0.0.2", 6380};
  EXPECT_TRUE(MasterResolver::CheckRole(Role("master"), at).ok());
  Status replica = MasterResolver::CheckRole(Role("slave"), at);
  EXPECT_EQ(replica.code(), Errc::kUnavailable);
  EXPECT_NE(replica.message().find("10.0.0.2:6380"), std::string::npos);
  EXPECT_NE(replica.message().find("slave"), std::string::npos);
  EXPECT_FALSE(MasterResolver::CheckRole(Role("sentinel"), at).ok());
  RedisReply error;
  error.type = RedisReply::Type::kError;
  error.str = "NOPERM this user has no permissions to run the 'role' command";
  EXPECT_FALSE(MasterResolver::CheckRole(error, at).ok());
}

TEST(Failover, WithoutSentinelsTheMasterIsHostAndPortAlways) {
  RedisOptions o;
  o.host = "redis.internal";
  o.port = 6390;
  auto r = MasterResolver::For(o);
  EXPECT_FALSE(r->follows_sentinels());
  r->Invalidate({"redis.internal", 6390});
  auto m = r->Master();
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, (RedisAddress{"redis.internal", 6390}));
  EXPECT_EQ(r->Describe(*m), "redis redis.internal:6390");
}

TEST(Failover, SentinelsThatDoNotAnswerLeaveNoMaster) {
  RedisOptions o;
  o.sentinels = {{"127.0.0.1", 1}, {"127.0.0.1", 2}};  // nothing listens there
  o.sentinel_master = "conveyor";
  o.sentinel_timeout_ms = 200;
  auto r = MasterResolver::For(o);
  EXPECT_TRUE(r->follows_sentinels());
  EXPECT_EQ(r.get(), MasterResolver::For(o).get());  // one per sentinel set
  auto m = r->Master();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.code(), Errc::kUnavailable);
  EXPECT_NE(m.status().message().find("conveyor"), std::string::npos);
  EXPECT_NE(m.status().message().find("127.0.0.1:2"), std::string::npos);
  o.sentinel_master = "other";
  EXPECT_NE(r.get(), MasterResolver::For(o).get());
}

}  // namespace
}  // namespace conveyor::queue::internal
