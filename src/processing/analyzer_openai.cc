// The openai provider: one chat-completions call per file over libcurl.
//
// The request is the OpenAI wire format that compatible servers accept:
//   POST <base_url>/chat/completions
//   Authorization: Bearer <api_key>          (omitted when the key is empty)
//   {"model", "temperature", "messages":[{"role":"system",...},{"role":"user",...}]}
// and the summary is the reply's choices[0].message.content. Each call has
// its own easy handle (handles are not shared between threads); NOSIGNAL
// keeps libcurl's timeouts from using signals in a multi-threaded worker.
#include <curl/curl.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "processing/analyzer.h"
#include "processing/analyzer_internal.h"
#include "processing/internal/text_util.h"

namespace conveyor::processing {
namespace {

using nlohmann::json;

// The provider's error text quoted in a job's error is cut here.
constexpr size_t kMaxProviderMessageBytes = 300;
// Sampling temperature: summaries should be faithful, not creative.
constexpr double kTemperature = 0.2;

constexpr char kSystemPrompt[] =
    "You summarise documents that a user uploaded. Write one readable paragraph of at most "
    "120 words, in the language of the document, saying what the document is and what it "
    "contains. If the user asked something about it, answer that from the document. Use only "
    "facts from the document; do not invent any.";

std::string Cut(std::string s, size_t max) {
  if (s.size() > max) s = s.substr(0, internal::Utf8Prefix(s, max)) + "…";
  return s;
}

// The provider's own error message from an OpenAI-style error body
// ({"error":{"message":...}}), else the start of the body.
std::string ProviderMessage(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) {
      return Cut(e["message"].get<std::string>(), kMaxProviderMessageBytes);
    }
    if (e.is_string()) return Cut(e.get<std::string>(), kMaxProviderMessageBytes);
  }
  std::string text = internal::IsValidUtf8(body, false) ? body : std::string("(binary body)");
  return Cut(text, kMaxProviderMessageBytes);
}

struct Sink {
  std::string body;
  size_t max = 0;
  bool over = false;
};

size_t OnData(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t bytes = size * n;
  if (sink->body.size() + bytes > sink->max) {
    sink->over = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  sink->body.append(data, bytes);
  return bytes;
}

class OpenAiAnalyzer : public Analyzer {
 public:
  explicit OpenAiAnalyzer(AnalyzerSettings settings) : settings_(std::move(settings)) {
    url_ = settings_.base_url;
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
    url_ += "/chat/completions";
  }

  std::string_view name() const override { return "openai"; }

  Result<Analysis> Analyze(const AnalysisInput& in) override {
    Analysis a = internal::LocalFacts(in, settings_, "openai");
    if (a.words == 0) {
      a.summary = "The file contains no text.";  // nothing to send
      return a;
    }
    auto content = Complete(RequestBody(in, a));
    if (!content) return content.status();
    a.summary = std::move(*content);
    return a;
  }

 private:
  std::string RequestBody(const AnalysisInput& in, const Analysis& facts) const {
    const size_t budget = static_cast<size_t>(std::max<int64_t>(settings_.max_input_chars, 0));
    std::string text = in.text.substr(0, internal::Utf8Prefix(in.text, budget));
    std::string user = "File: " + (in.name_hint.empty() ? std::string("(unnamed)") : in.name_hint) +
                       " — " + internal::DescribeCounts(in.kind, facts) + "\n";
    user += "User's message: " + (in.message.empty() ? std::string("(none)") : in.message) + "\n\n";
    user += text.size() < in.text.size()
                ? "Document text (the first " + std::to_string(text.size()) + " of " +
                      std::to_string(in.text.size()) + " bytes):\n"
                : std::string("Document text:\n");
    user += "\"\"\"\n" + text + "\n\"\"\"";
    json body = {{"model", settings_.model},
                 {"temperature", kTemperature},
                 {"messages",
                  json::array({{{"role", "system"}, {"content", kSystemPrompt}},
                               {{"role", "user"}, {"content", user}}})}};
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
  }

  // POSTs `body`; the reply's content or the error as the header describes.
  Result<std::string> Complete(const std::string& body) const {
    CURL* h = curl_easy_init();
    if (!h) return Unavailable("Analysis provider: cannot create an HTTP handle");
    struct curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
    std::string auth;
    if (!settings_.api_key.empty()) {
      auth = "Authorization: Bearer " + settings_.api_key;
      headers = curl_slist_append(headers, auth.c_str());
    }
    Sink sink;
    sink.max = static_cast<size_t>(settings_.max_response_bytes);
    curl_easy_setopt(h, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.timeout_ms));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min(settings_.connect_timeout_ms, settings_.timeout_ms)));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "conveyor");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnData);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);

    if (sink.over) {
      return Unavailable("Analysis provider sent a reply over " +
                         std::to_string(settings_.max_response_bytes) + " bytes");
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      return Unavailable("Analysis provider timed out after " +
                         std::to_string(settings_.timeout_ms) + " ms");
    }
    if (rc != CURLE_OK) {
      return Unavailable(std::string("Analysis provider unreachable: ") + curl_easy_strerror(rc));
    }
    const std::string code = "HTTP " + std::to_string(status);
    if (status == 429 || status == 408 || status >= 500) {
      return Unavailable("Analysis provider is busy or failing (" + code +
                         "): " + ProviderMessage(sink.body));
    }
    if (status >= 400) {
      return InvalidArgument("Analysis provider refused the request (" + code +
                             "): " + ProviderMessage(sink.body));
    }
    if (status < 200 || status >= 300) {
      return Unavailable("Analysis provider answered with unexpected " + code);
    }
    json j = json::parse(sink.body, nullptr, false);
    if (j.is_object() && j.contains("choices") && j["choices"].is_array() &&
        !j["choices"].empty()) {
      const json& c = j["choices"][0];
      if (c.is_object() && c.contains("message") && c["message"].is_object() &&
          c["message"].contains("content") && c["message"]["content"].is_string()) {
        std::string content = c["message"]["content"].get<std::string>();
        size_t a = content.find_first_not_of(" \t\r\n");
        size_t b = content.find_last_not_of(" \t\r\n");
        if (a != std::string::npos) return content.substr(a, b - a + 1);
      }
    }
    return Unavailable("Analysis provider sent a reply without choices[0].message.content");
  }

  const AnalyzerSettings settings_;
  std::string url_;
};

}  // namespace

std::unique_ptr<Analyzer> internal::MakeOpenAiAnalyzer(const AnalyzerSettings& settings) {
  // Not thread-safe in libcurl; done once, before any handle exists.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::make_unique<OpenAiAnalyzer>(settings);
}

}  // namespace conveyor::processing
