#include "processing/analyzer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

namespace conveyor::processing {
namespace {

using Clock = std::chrono::steady_clock;

// A tiny HTTP/1.1 server on 127.0.0.1 that speaks just enough of the
// chat-completions protocol: every request gets the configured answer. It
// records the last request so tests can check what was sent.
class FakeProvider {
 public:
  struct Reply {
    int status = 200;
    std::string body;
    int delay_ms = 0;  // before answering
  };

  FakeProvider() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;  // the kernel picks a free port
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeProvider() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    close(fd_);
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  void Set(Reply r) {
    std::lock_guard lock(mu_);
    reply_ = std::move(r);
  }
  std::string last_request_line() {
    std::lock_guard lock(mu_);
    return request_line_;
  }
  std::string last_headers() {
    std::lock_guard lock(mu_);
    return headers_;
  }
  std::string last_body() {
    std::lock_guard lock(mu_);
    return body_;
  }
  int requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void Loop() {
    for (;;) {
      {
        std::lock_guard lock(mu_);
        if (stop_) return;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      Serve(c);
      close(c);
    }
  }

  void Serve(int c) {
    std::string in;
    char buf[8192];
    size_t header_end = std::string::npos;
    while (header_end == std::string::npos) {
      ssize_t n = recv(c, buf, sizeof(buf), 0);
      if (n <= 0) return;
      in.append(buf, static_cast<size_t>(n));
      header_end = in.find("\r\n\r\n");
    }
    std::string headers = in.substr(0, header_end);
    size_t length = 0;
    std::string lower;
    for (char ch : headers) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (auto p = lower.find("content-length:"); p != std::string::npos) {
      length = std::stoul(headers.substr(p + 15));
    }
    std::string body = in.substr(header_end + 4);
    while (body.size() < length) {
      ssize_t n = recv(c, buf, sizeof(buf), 0);
      if (n <= 0) return;
      body.append(buf, static_cast<size_t>(n));
    }
    Reply reply;
    {
      std::unique_lock lock(mu_);
      request_line_ = headers.substr(0, headers.find("\r\n"));
      headers_ = headers;
      body_ = body;
      ++requests_;
      reply = reply_;
      if (reply.delay_ms > 0) {
        cv_.wait_for(lock, std::chrono::milliseconds(reply.delay_ms), [&] { return stop_; });
      }
    }
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\nContent-Type: application/json\r\n"
                      "Content-Length: " + std::to_string(reply.body.size()) +
                      "\r\nConnection: close\r\n\r\n" + reply.body;
    (void)send(c, out.data(), out.size(), MSG_NOSIGNAL);
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  Reply reply_;
  std::string request_line_, headers_, body_;
  int requests_ = 0;
};

const char kEnglish[] =
    "The warehouse budget for the next quarter covers forklift leasing, pallet racking and "
    "staff training. Forklift leasing is the largest item of the warehouse budget.\n\n"
    "Pallet racking must be inspected before the expansion. The inspection of the racking is "
    "booked for March, and the warehouse team will report on it.\n\n"
    "Staff training covers forklift safety. Every driver needs a forklift certificate.";

AnalysisInput Input(const std::string& text) {
  AnalysisInput in;
  in.text = text;
  in.kind = FileKind::kText;
  in.message = "What does it say about forklifts?";
  in.name_hint = "budget.txt";
  return in;
}

std::string ChatReply(const std::string& content) {
  nlohmann::json j = {{"id", "chatcmpl-1"},
                      {"object", "chat.completion"},
                      {"choices", {{{"index", 0},
                                    {"message", {{"role", "assistant"}, {"content", content}}},
                                    {"finish_reason", "stop"}}}}};
  return j.dump();
}

std::unique_ptr<Analyzer> OpenAi(const FakeProvider& server, int64_t timeout_ms = 2000,
                                 int64_t max_input_chars = 12000) {
  AnalyzerSettings s;
  s.provider = "openai";
  s.base_url = server.base_url();
  s.api_key = "sk-test";
  s.model = "test-model";
  s.timeout_ms = timeout_ms;
  s.max_input_chars = max_input_chars;
  auto a = MakeAnalyzer(s);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  return std::move(*a);
}

TEST(Keywords, TopicWordsRankFirstAndStopWordsNever) {
  auto k = ExtractKeywords(kEnglish, 5);
  ASSERT_EQ(k.size(), 5u);
  EXPECT_EQ(k[0], "forklift");
  EXPECT_NE(std::find(k.begin(), k.end(), "warehouse"), k.end());
  for (const auto& w : ExtractKeywords(kEnglish, 100)) {
    EXPECT_NE(w, "the");
    EXPECT_NE(w, "and");
    EXPECT_NE(w, "for");
    EXPECT_GE(w.size(), 3u);
  }
  EXPECT_TRUE(ExtractKeywords("", 5).empty());
  EXPECT_TRUE(ExtractKeywords("12 345 6789", 5).empty());
}

TEST(Language, StopWordProfilesTellTheSevenLanguagesApart) {
  EXPECT_EQ(DetectLanguage(kEnglish), "en");
  EXPECT_EQ(DetectLanguage("Der Bericht beschreibt die Lage des Lagers und die Kosten für das "
                           "nächste Quartal. Es ist nicht klar, ob die Erweiterung mit dem "
                           "Budget auskommt, aber wir werden sie noch prüfen."),
            "de");
  EXPECT_EQ(DetectLanguage("Le rapport décrit la situation de l'entrepôt et les coûts pour le "
                           "prochain trimestre. Il n'est pas clair que le budget suffise, mais "
                           "nous allons le vérifier avec les équipes."),
            "fr");
  EXPECT_EQ(DetectLanguage("El informe describe la situación del almacén y los costes para el "
                           "próximo trimestre. No está claro que el presupuesto sea suficiente, "
                           "pero lo vamos a revisar con los equipos."),
            "es");
  EXPECT_EQ(DetectLanguage("Il rapporto descrive la situazione del magazzino e i costi per il "
                           "prossimo trimestre. Non è chiaro che il budget sia sufficiente, ma "
                           "lo verificheremo con le squadre della sede."),
            "it");
  EXPECT_EQ(DetectLanguage("O relatório descreve a situação do armazém e os custos para o "
                           "próximo trimestre. Não está claro que o orçamento seja suficiente, "
                           "mas vamos verificar isso com as equipas."),
            "pt");
  EXPECT_EQ(DetectLanguage("Het rapport beschrijft de situatie van het magazijn en de kosten "
                           "voor het volgende kwartaal. Het is niet duidelijk of het budget "
                           "voldoende is, maar we gaan het met de teams controleren."),
            "nl");
  EXPECT_EQ(DetectLanguage("12, 34, 56, 78, 90, 11, 22, 33, 44"), "und");
  EXPECT_EQ(DetectLanguage("too short"), "und");
}

TEST(LocalAnalyzer, SummarisesWithKeywordsLanguageAndCounts) {
  auto a = MakeAnalyzer({});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->name(), "local");
  AnalysisInput in = Input(kEnglish);
  in.pages = 2;
  auto r = (*a)->Analyze(in);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->provider, "local");
  EXPECT_EQ(r->language, "en");
  EXPECT_GT(r->words, 50);
  EXPECT_EQ(r->pages, 2);
  EXPECT_EQ(r->keywords.front(), "forklift");
  EXPECT_NE(r->summary.find("Plain text,"), std::string::npos) << r->summary;
  EXPECT_NE(r->summary.find("2 pages"), std::string::npos) << r->summary;
  EXPECT_NE(r->summary.find("forklift"), std::string::npos) << r->summary;
  EXPECT_NE(r->summary.find("Written in English."), std::string::npos) << r->summary;
}

TEST(LocalAnalyzer, UsesTheExtractorsSummaryWhenGiven) {
  auto a = MakeAnalyzer({});
  ASSERT_TRUE(a.ok());
  AnalysisInput in = Input("name: Ann, city: Oslo.\nname: Bob, city: Rome.\nname: Cy, city: Lima.");
  in.kind = FileKind::kCsv;
  in.extract_summary = "CSV table with 3 rows and 2 columns: name, city.";
  auto r = (*a)->Analyze(in);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->summary.rfind(in.extract_summary, 0), 0u) << r->summary;
}

TEST(LocalAnalyzer, EmptyTextSaysSo) {
  auto a = MakeAnalyzer({});
  ASSERT_TRUE(a.ok());
  auto r = (*a)->Analyze(Input(""));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->summary, "The file contains no text.");
  EXPECT_EQ(r->words, 0);
}

TEST(MakeAnalyzer, RefusesUnknownProviders) {
  AnalyzerSettings s;
  s.provider = "magic";
  auto a = MakeAnalyzer(s);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.code(), Errc::kInvalidArgument);
}

TEST(OpenAiAnalyzer, SendsTheChatRequestAndReturnsTheReply) {
  FakeProvider server;
  server.Set({200, ChatReply("  The budget is mostly forklift leasing.\n"), 0});
  auto analyzer = OpenAi(server, 2000, /*max_input_chars=*/100);
  auto r = analyzer->Analyze(Input(kEnglish));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->summary, "The budget is mostly forklift leasing.");
  EXPECT_EQ(r->provider, "openai");
  EXPECT_EQ(r->keywords.front(), "forklift");  // computed locally
  EXPECT_EQ(r->language, "en");

  EXPECT_EQ(server.last_request_line(), "POST /v1/chat/completions HTTP/1.1");
  EXPECT_NE(server.last_headers().find("Authorization: Bearer sk-test"), std::string::npos);
  auto body = nlohmann::json::parse(server.last_body(), nullptr, false);
  ASSERT_TRUE(body.is_object()) << server.last_body();
  EXPECT_EQ(body["model"], "test-model");
  ASSERT_EQ(body["messages"].size(), 2u);
  EXPECT_EQ(body["messages"][0]["role"], "system");
  EXPECT_EQ(body["messages"][1]["role"], "user");
  std::string user = body["messages"][1]["content"];
  EXPECT_NE(user.find("What does it say about forklifts?"), std::string::npos);
  EXPECT_NE(user.find("The warehouse budget"), std::string::npos);  // the start of the text...
  EXPECT_EQ(user.find("forklift certificate"), std::string::npos);  // ...cut to the budget
}

TEST(OpenAiAnalyzer, RateLimitAndServerErrorsAreTransient) {
  FakeProvider server;
  auto analyzer = OpenAi(server);
  server.Set({429, R"({"error":{"message":"Rate limit reached","type":"requests"}})", 0});
  auto r = analyzer->Analyze(Input(kEnglish));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kUnavailable);
  EXPECT_NE(r.status().message().find("Rate limit reached"), std::string::npos);
  server.Set({500, "oops", 0});
  r = analyzer->Analyze(Input(kEnglish));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kUnavailable);
  server.Set({503, "", 0});
  r = analyzer->Analyze(Input(kEnglish));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kUnavailable);
}

TEST(OpenAiAnalyzer, ClientErrorsArePermanentWithTheProvidersMessage) {
  FakeProvider server;
  auto analyzer = OpenAi(server);
  server.Set({400, R"({"error":{"message":"This model's maximum context length is 8192 tokens"}})", 0});
  auto r = analyzer->Analyze(Input(kEnglish));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kInvalidArgument);
  EXPECT_NE(r.status().message().find("maximum context length"), std::string::npos)
      << r.status().message();
}

TEST(OpenAiAnalyzer, SlowProviderTimesOutAsTransient) {
  FakeProvider server;
  server.Set({200, ChatReply("late"), 5000});
  auto analyzer = OpenAi(server, /*timeout_ms=*/300);
  auto start = Clock::now();
  auto r = analyzer->Analyze(Input(kEnglish));
  auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kUnavailable);
  EXPECT_NE(r.status().message().find("timed out"), std::string::npos) << r.status().message();
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(OpenAiAnalyzer, GarbageOrIncompleteRepliesAreTransient) {
  FakeProvider server;
  auto analyzer = OpenAi(server);
  server.Set({200, "<html>not json</html>", 0});
  auto r = analyzer->Analyze(Input(kEnglish));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kUnavailable);
  server.Set({200, R"({"choices":[]})", 0});
  r = analyzer->Analyze(Input(kEnglish));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kUnavailable);
  EXPECT_EQ(server.requests(), 2);
}

TEST(OpenAiAnalyzer, UnreachableProviderIsTransient) {
  int port;
  {
    FakeProvider gone;  // a port that was just free, now closed again
    port = std::stoi(gone.base_url().substr(gone.base_url().rfind(':') + 1));
  }
  AnalyzerSettings s;
  s.provider = "openai";
  s.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  s.timeout_ms = 1000;
  auto a = MakeAnalyzer(s);
  ASSERT_TRUE(a.ok());
  auto r = (*a)->Analyze(Input(kEnglish));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::kUnavailable);
}

}  // namespace
}  // namespace conveyor::processing
