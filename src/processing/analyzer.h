// File: processing/analyzer.h
//
// Analysis providers: turn a file's extracted text into the summary a user
// reads (the job result's aiResponse.text), plus keywords, the language and
// counts. Two providers behind one interface:
//
//   local   (default) offline and deterministic: the extractive summary of
//           processing (TF-IDF centroid, steered by the user's message).
//   openai  any OpenAI-compatible chat-completions endpoint (OpenAI, Azure
//           OpenAI's compatible route, vLLM, Ollama, llama.cpp server...):
//           POST <base_url>/chat/completions with the text cut to
//           max_input_chars and the user's message; the reply's
//           choices[0].message.content is the summary.
//
// Keywords, language and counts are always computed locally, whatever the
// provider, so they are the same for both and cost no tokens.
//
// Errors (openai): a timeout, a connection failure, HTTP 429 or 5xx, or a
// reply that is not the expected JSON -> kUnavailable (transient: the queue
// retries the job with backoff). Any other 4xx -> kInvalidArgument with the
// provider's error message (permanent: retrying the same request fails
// again). The local provider does not fail.
//
// Threads: Analyze is blocking and may be called from many threads at once
// on one Analyzer.
//
// Example:
//   auto analyzer = MakeAnalyzer(settings);           // once, at start-up
//   AnalysisInput in{out.text, out.kind, message, out.summary};
//   in.words = out.words;
//   auto a = (*analyzer)->Analyze(in);
//   if (!a) return a.status();                        // transient or permanent
//   result["aiResponse"]["text"] = a->summary;
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "processing/processing.h"

namespace conveyor::processing {

struct AnalysisInput {
  std::string text;                  // extracted text (UTF-8)
  FileKind kind = FileKind::kUnknown;
  std::string message;               // the user's accompanying message, may be empty
  // processing::Output::summary when available: the local provider uses it
  // as is (it already describes tables and JSON well); empty: summarised here.
  std::string extract_summary;
  std::string name_hint;             // the client's file name, display only
  int64_t words = -1;                // -1: counted here
  int64_t pages = 0;                 // 0 when the format has no pages
  int64_t tables = 0;                // tables found by the extractor
};

struct Analysis {
  std::string summary;                // aiResponse.text: a readable paragraph
  std::vector<std::string> keywords;  // most characteristic words first, lower case
  std::string language;               // ISO 639-1: en de fr es it pt nl, or "und"
  int64_t words = 0;
  int64_t pages = 0;
  int64_t tables = 0;
  std::string provider;               // "local" or "openai"
};

class Analyzer {
 public:
  virtual ~Analyzer() = default;
  virtual Result<Analysis> Analyze(const AnalysisInput& input) = 0;
  virtual std::string_view name() const = 0;
};

struct AnalyzerSettings {
  std::string provider = "local";                   // AI_PROVIDER: local | openai
  std::string base_url = "https://api.openai.com/v1";  // AI_BASE_URL
  std::string api_key;                              // AI_API_KEY (sent as a bearer token)
  std::string model = "gpt-4o-mini";                // AI_MODEL
  int64_t timeout_ms = 30000;                       // AI_TIMEOUT_MS: the whole request
  int64_t connect_timeout_ms = 5000;                // TCP + TLS connect (within timeout_ms)
  int64_t max_input_chars = 12000;                  // AI_MAX_INPUT_CHARS: text sent, in bytes
  int64_t max_response_bytes = 1 << 20;             // a longer reply is refused (kUnavailable)
  int max_keywords = 10;                            // keywords returned
  int summary_sentences = 3;                        // local provider's summary length
};

// The provider named in `settings`; kInvalidArgument for an unknown name or an
// openai provider without a base URL or model.
Result<std::unique_ptr<Analyzer>> MakeAnalyzer(const AnalyzerSettings& settings);

// Building blocks, shared by the providers and exposed for tests.

// The `max` most characteristic words of `text`: frequent in it, not stop
// words of any supported language, not numbers, at least 3 letters; scored by
// term frequency damped by length and spread (a TF-IDF over the text's
// paragraphs), ties broken alphabetically.
std::vector<std::string> ExtractKeywords(const std::string& text, int max);

// The language of `text` by stop-word profile: "en", "de", "fr", "es", "it",
// "pt", "nl", or "und" when too little text or no profile stands out.
std::string DetectLanguage(const std::string& text);

// English name of a code from DetectLanguage ("English"); "" for "und".
std::string LanguageName(const std::string& code);

}  // namespace conveyor::processing
