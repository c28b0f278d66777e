// Push notifications (SSE and WebSocket) of the real `conveyor api` with the
// real worker and redis-server: a client is told of its job's completion as
// the status route would show it, another user's job is never shown, and a
// client of one API process hears of a job uploaded through another.
#include <gtest/gtest.h>

#include <thread>

#include "push_client.h"
#include "service.h"

namespace conveyor::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kText =
    "Push notifications: the client hears of its job's completion without polling.\n";

json StatusData(Service& svc, const std::string& user, const std::string& id) {
  auto r = svc.Status(user, id);
  return Service::Json(r)["data"];
}

std::map<std::string, std::string> Bearer(const std::string& user) {
  return {{"Authorization", "Bearer " + Service::Token(user)}};
}

TEST(PushSse, StateFirstThenCompletedAsPollingShowsItThenTheStreamEnds) {
  Service svc(Env{{"PROCESSING_DELAY_MS", "200"}});
  svc.StartApi();
  std::string id = svc.UploadOk("alice", "s1", {"file", "notes.txt", "text/plain", kText});
  ASSERT_FALSE(id.empty());
  SseClient sse(svc.port(), "/api/chat/upload/events/" + id, Bearer("alice"));
  ASSERT_EQ(sse.Status(), 200) << sse.head() << sse.rest();
  EXPECT_NE(sse.head().find("Content-Type: text/event-stream"), std::string::npos) << sse.head();
  auto first = sse.Next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->event, "status");
  EXPECT_EQ(first->id, "0");
  EXPECT_EQ(json::parse(first->data), StatusData(svc, "alice", id));

  svc.StartWorker();
  std::optional<SseEvent> e;
  std::vector<std::string> seen;
  while ((e = sse.Next())) {
    seen.push_back(e->event);
    if (e->event == "completed" || e->event == "failed") break;
  }
  ASSERT_TRUE(e) << "events: " << ::testing::PrintToString(seen) << "\n" << svc.api().Log();
  EXPECT_EQ(e->event, "completed");
  EXPECT_EQ(e->id, "1000");
  json data = json::parse(e->data);
  EXPECT_EQ(data["status"], "completed");
  EXPECT_EQ(data, StatusData(svc, "alice", id));
  EXPECT_TRUE(sse.Ended());

  // Reconnecting after the final event: 204, EventSource stops.
  SseClient again(svc.port(), "/api/chat/upload/events/" + id,
                  {{"Authorization", "Bearer " + Service::Token("alice")}, {"Last-Event-ID", "1000"}});
  EXPECT_EQ(again.Status(), 204);
  // Reconnecting from a progress id: the final state comes, then the end.
  SseClient late(svc.port(), "/api/chat/upload/events/" + id,
                 {{"Authorization", "Bearer " + Service::Token("alice")}, {"Last-Event-ID", "41"}});
  ASSERT_EQ(late.Status(), 200);
  auto fin = late.Next();
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->event, "completed");
  EXPECT_EQ(json::parse(fin->data), data);
  EXPECT_TRUE(late.Ended());
}

TEST(PushSse, AnotherUsersJobOrAnUnknownIdIs404AndNoTokenIs401) {
  Service svc;
  svc.StartApi();
  std::string id = svc.UploadOk("alice", "s1", {"file", "notes.txt", "text/plain", kText});
  ASSERT_FALSE(id.empty());
  SseClient bob(svc.port(), "/api/chat/upload/events/" + id, Bearer("bob"));
  EXPECT_EQ(bob.Status(), 404);
  EXPECT_EQ(bob.rest().find(id), std::string::npos);
  SseClient unknown(svc.port(), "/api/chat/upload/events/00000000-0000-4000-8000-000000000000",
                    Bearer("alice"));
  EXPECT_EQ(unknown.Status(), 404);
  SseClient not_an_id(svc.port(), "/api/chat/upload/events/nope", Bearer("alice"));
  EXPECT_EQ(not_an_id.Status(), 404);
  SseClient anonymous(svc.port(), "/api/chat/upload/events/" + id, {});
  EXPECT_EQ(anonymous.Status(), 401);
}

TEST(PushWs, SubscribeGetsStateThenCompletedAndOthersJobsAreErrors) {
  // Messages up to 1 MiB, so a subscribe to 10,000 ids meets the
  // subscription limit (at the default 64 KiB it closes the connection).
  Service svc(Env{{"PROCESSING_DELAY_MS", "200"},
                  {"WS_MAX_SUBSCRIPTIONS", "50"},
                  {"WS_MAX_MESSAGE_BYTES", "1048576"}});
  svc.StartApi();
  std::string mine = svc.UploadOk("alice", "s1", {"file", "a.txt", "text/plain", kText});
  std::string theirs = svc.UploadOk("bob", "s1", {"file", "b.txt", "text/plain", kText});
  ASSERT_FALSE(mine.empty());
  ASSERT_FALSE(theirs.empty());

  WsClient ws(svc.port(), Service::Token("alice"));
  ASSERT_TRUE(ws.ok()) << ws.status();
  ASSERT_TRUE(ws.Send({{"type", "subscribe"}, {"jobIds", {theirs, mine, "not-a-job"}}}));
  std::map<std::string, json> first;
  for (int i = 0; i < 3; ++i) {
    auto m = ws.Next();
    ASSERT_TRUE(m);
    first[m->value("jobId", std::string())] = *m;
  }
  EXPECT_EQ(first[theirs]["type"], "error");
  EXPECT_FALSE(first[theirs].contains("data"));
  EXPECT_EQ(first["not-a-job"]["type"], "error");
  EXPECT_EQ(first[mine]["type"], "status");
  EXPECT_EQ(first[mine]["data"], StatusData(svc, "alice", mine));

  // Malformed messages are answered with errors; the connection stays.
  ASSERT_TRUE(ws.SendText("{not json"));
  auto err = ws.Next();
  ASSERT_TRUE(err);
  EXPECT_EQ((*err)["type"], "error");
  ASSERT_TRUE(ws.Send({{"type", "dance"}}));
  err = ws.Next();
  ASSERT_TRUE(err);
  EXPECT_EQ((*err)["type"], "error");
  json many = json::array();
  for (int i = 0; i < 10000; ++i) many.push_back("00000000-0000-4000-8000-" + std::to_string(100000000000 + i));
  ASSERT_TRUE(ws.Send({{"type", "subscribe"}, {"jobIds", many}}));
  err = ws.Next();
  ASSERT_TRUE(err);
  EXPECT_EQ((*err)["type"], "error");
  EXPECT_NE((*err)["error"].get<std::string>().find("too many"), std::string::npos) << err->dump();

  // A second client with the token in the query string.
  WsClient browser(svc.port(), "", "?access_token=" + Service::Token("alice"));
  ASSERT_TRUE(browser.ok()) << browser.status();
  ASSERT_TRUE(browser.Send({{"type", "subscribe"}, {"jobIds", {mine}}}));
  auto s = browser.NextOf("status", mine);
  ASSERT_TRUE(s);

  svc.StartWorker();
  auto done = ws.NextOf("completed", mine);
  ASSERT_TRUE(done) << ws.last_error().message() << "\n" << svc.api().Log();
  EXPECT_EQ((*done)["data"], StatusData(svc, "alice", mine));
  auto done2 = browser.NextOf("completed", mine);
  ASSERT_TRUE(done2);
  EXPECT_EQ((*done2)["data"], (*done)["data"]);
  // Bob's job completed too, but alice heard nothing of it: her next
  // message is the answer to a fresh subscribe of it.
  ASSERT_TRUE(ws.Send({{"type", "subscribe"}, {"jobIds", {theirs}}}));
  auto after = ws.Next();
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["type"], "error") << after->dump();
  EXPECT_EQ((*after)["jobId"], theirs);

  // No token: the handshake is refused.
  WsClient anonymous(svc.port(), "");
  EXPECT_FALSE(anonymous.ok());
  EXPECT_EQ(anonymous.status(), 401);
}

TEST(PushWs, OversizedMessageClosesThatConnectionOnly) {
  Service svc(Env{{"WS_MAX_MESSAGE_BYTES", "1024"}});
  svc.StartApi();
  std::string mine = svc.UploadOk("alice", "s1", {"file", "a.txt", "text/plain", kText});
  WsClient big(svc.port(), Service::Token("alice"));
  WsClient other(svc.port(), Service::Token("alice"));
  ASSERT_TRUE(big.ok());
  ASSERT_TRUE(other.ok());
  big.SendText(std::string(4096, 'x'));
  EXPECT_FALSE(big.Next());
  ASSERT_TRUE(other.Send({{"type", "subscribe"}, {"jobIds", {mine}}}));
  auto s = other.NextOf("status", mine);
  ASSERT_TRUE(s);
}

TEST(PushWs, AClientOfOneApiProcessHearsOfAJobUploadedThroughAnother) {
  Service svc(Env{{"PROCESSING_DELAY_MS", "300"}});
  svc.StartApi();
  // A second API process on the same Redis and database.
  auto env2 = svc.env();
  const int port2 = FreePort();
  env2["PORT"] = std::to_string(port2);
  Process api2({ConveyorBinary(), "api"}, env2, svc.data_dir() + "/api2.log");
  ASSERT_TRUE(WaitForPort(port2, 20s)) << api2.Log();

  auto r = Upload(port2, Service::Token("alice"), "s1", {"file", "a.txt", "text/plain", kText});
  ASSERT_EQ(r.status, 202) << r.body;
  std::string id = Service::Json(r)["data"]["jobId"];
  WsClient ws(svc.port(), Service::Token("alice"));
  ASSERT_TRUE(ws.ok());
  ASSERT_TRUE(ws.Send({{"type", "subscribe"}, {"jobIds", {id}}}));
  ASSERT_TRUE(ws.NextOf("status", id));
  svc.StartWorker();
  auto done = ws.NextOf("completed", id);
  ASSERT_TRUE(done) << svc.api().Log();
  EXPECT_EQ((*done)["data"], StatusData(svc, "alice", id));
}

TEST(PushWs, AFinalEventDuringARedisRestartIsNotMissed) {
  Service svc(Env{{"PROCESSING_DELAY_MS", "1500"}});
  svc.StartApi();
  std::string id = svc.UploadOk("alice", "s1", {"file", "a.txt", "text/plain", kText});
  ASSERT_FALSE(id.empty());
  WsClient ws(svc.port(), Service::Token("alice"));
  ASSERT_TRUE(ws.ok());
  ASSERT_TRUE(ws.Send({{"type", "subscribe"}, {"jobIds", {id}}}));
  ASSERT_TRUE(ws.NextOf("status", id));
  // Redis goes away while the job is processed. The worker records the row
  // (the database is not Redis) but cannot tell the queue: no completed
  // event ever comes. Once Redis is back the API re-reads the jobs its
  // clients watch and tells them.
  svc.StartWorker();
  ASSERT_TRUE(Eventually([&] {
    return StatusData(svc, "alice", id)["status"] == "processing";
  }, 60s));
  svc.redis().Kill();
  ASSERT_TRUE(Eventually([&] {
    return StatusData(svc, "alice", id)["status"] == "completed";
  }, 30s)) << svc.worker().Log();
  svc.redis().Start();
  auto done = ws.NextOf("completed", id);
  ASSERT_TRUE(done) << svc.api().Log() << svc.worker().Log();
  EXPECT_EQ((*done)["data"], StatusData(svc, "alice", id));
}

}  // namespace
}  // namespace conveyor::testing
