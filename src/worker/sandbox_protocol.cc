#include "worker/sandbox_protocol.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "worker/sandbox.h"

namespace conveyor::worker::sandbox {
namespace {

using nlohmann::json;

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

constexpr Errc kAllCodes[] = {
    Errc::kInvalidArgument,    Errc::kNotFound,         Errc::kAlreadyExists,
    Errc::kUnauthenticated,    Errc::kPermissionDenied, Errc::kResourceExhausted,
    Errc::kFailedPrecondition, Errc::kAborted,          Errc::kUnavailable,
    Errc::kDeadlineExceeded,   Errc::kDataLoss,         Errc::kCancelled,
    Errc::kInternal,           Errc::kUnimplemented};

// Counts and the source encoding: carried when processing::Output has them
// (they arrive with the document-format extractors), so this file builds
// against either shape of the struct.
template <class O>
void EncodeExtras(const O& out, json& j) {
  if constexpr (requires { out.pages; }) j["pages"] = out.pages;
  if constexpr (requires { out.sheets; }) j["sheets"] = out.sheets;
  if constexpr (requires { out.slides; }) j["slides"] = out.slides;
  if constexpr (requires { out.tables; }) j["tables"] = out.tables;
  if constexpr (requires { out.encoding; }) j["encoding"] = out.encoding;
}

}  // namespace

Errc ErrcFromName(std::string_view name) {
  for (Errc e : kAllCodes) {
    if (ErrcName(e) == name) return e;
  }
  return Errc::kInternal;
}

std::string EncodeRequest(const Request& r) {
  // No path: the child reads the upload from kInputFd and never learns where
  // it lives.
  json j = {{"nameHint", r.input.name_hint},
            {"message", r.input.message},
            {"limits",
             {{"maxInputBytes", r.limits.max_input_bytes},
              {"maxTextBytes", r.limits.max_text_bytes},
              {"chunkChars", r.limits.chunk_chars},
              {"chunkOverlapChars", r.limits.chunk_overlap_chars},
              {"summarySentences", r.limits.summary_sentences}}}};
  return Dump(j);
}

Result<Request> DecodeRequest(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return InvalidArgument("extract request is not a JSON object");
  Request r;
  r.input.fd = kInputFd;
  if (j.contains("nameHint") && j["nameHint"].is_string()) r.input.name_hint = j["nameHint"];
  if (j.contains("message") && j["message"].is_string()) r.input.message = j["message"];
  if (j.contains("limits") && j["limits"].is_object()) {
    const json& l = j["limits"];
    auto num = [&](const char* key, auto& field) {
      if (l.contains(key) && l[key].is_number_integer()) {
        field = l[key].get<std::remove_reference_t<decltype(field)>>();
      }
    };
    num("maxInputBytes", r.limits.max_input_bytes);
    num("maxTextBytes", r.limits.max_text_bytes);
    num("chunkChars", r.limits.chunk_chars);
    num("chunkOverlapChars", r.limits.chunk_overlap_chars);
    num("summarySentences", r.limits.summary_sentences);
  }
  return r;
}

std::string ProgressLine(const std::string& stage, int percent) {
  return Dump({{"progress", {{"stage", stage}, {"percent", percent}}}});
}

std::string ResultLine(const processing::Output& out, const std::string& isolation) {
  json chunks = json::array();
  size_t from = 0;  // chunks come in order: search from the previous one
  for (const auto& c : out.chunks) {
    size_t at = out.text.find(c, from);
    if (at == std::string::npos) at = out.text.find(c);
    if (at != std::string::npos) {
      chunks.push_back({{"o", at}, {"n", c.size()}});
      from = at;
    } else {
      chunks.push_back({{"t", c}});
    }
  }
  json result = {{"kind", std::string(processing::FileKindName(out.kind))},
                 {"kindId", static_cast<int>(out.kind)},
                 {"text", out.text},
                 {"summary", out.summary},
                 {"words", out.words},
                 {"chunks", std::move(chunks)}};
  EncodeExtras(out, result);
  return Dump({{"result", std::move(result)}, {"isolation", isolation}});
}

std::string ErrorLine(const Status& s) {
  return Dump({{"error", {{"code", std::string(ErrcName(s.code()))}, {"message", s.message()}}}});
}

std::string ProbeLine(const std::string& layers) {
  return Dump({{"probe", {{"layers", layers}}}});
}

Result<Message> DecodeLine(std::string_view line, int64_t max_decoded_bytes) {
  auto bad = [](const std::string& what) { return InvalidArgument("extract child protocol: " + what); };
  // parse() never throws with allow_exceptions=false; a depth bomb is parsed
  // iteratively by nlohmann, and the parent bounds the line's length.
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return bad("a line that is not a JSON object");
  auto only_keys = [](const json& o, std::initializer_list<const char*> keys) {
    if (!o.is_object()) return false;
    for (const auto& [k, v] : o.items()) {
      bool known = false;
      for (const char* want : keys) known = known || k == want;
      if (!known) return false;
    }
    return true;
  };
  auto string_at = [](const json& o, const char* key, size_t max, std::string* out) {
    auto it = o.find(key);
    if (it == o.end() || !it->is_string()) return false;
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > max) return false;
    *out = s;
    return true;
  };
  auto count_at = [](const json& o, const char* key, int64_t* out) {
    auto it = o.find(key);
    if (it == o.end()) return true;  // optional, 0
    if (!it->is_number_unsigned()) return false;
    uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(v);
    return true;
  };
  Message m;
  if (j.size() == 1 && j.contains("progress")) {
    const json& p = j["progress"];
    if (!only_keys(p, {"stage", "percent"})) return bad("malformed progress");
    m.type = Message::Type::kProgress;
    if (!string_at(p, "stage", kMaxStageBytes, &m.stage) || m.stage.empty() ||
        m.stage.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos) {
      return bad("progress with a bad stage");
    }
    auto pct = p.find("percent");
    if (pct == p.end() || !pct->is_number_integer()) return bad("progress without a percent");
    int64_t v = pct->get<int64_t>();
    if (v < 0 || v > 100) return bad("progress percent out of range");
    m.percent = static_cast<int>(v);
    return m;
  }
  if (j.size() == 1 && j.contains("error")) {
    const json& e = j["error"];
    if (!only_keys(e, {"code", "message"})) return bad("malformed error");
    m.type = Message::Type::kError;
    std::string code, message;
    if (!string_at(e, "code", 64, &code)) return bad("error without a code");
    if (!string_at(e, "message", kMaxErrorMessageBytes, &message)) return bad("error without a message");
    Errc c = ErrcFromName(code);
    if (ErrcName(c) != code || c == Errc::kOk) return bad("error with an unknown code");
    m.error = Status(c, std::move(message));
    return m;
  }
  if (j.size() == 1 && j.contains("probe")) {
    const json& p = j["probe"];
    if (!only_keys(p, {"layers"}) || !string_at(p, "layers", kMaxIsolationBytes, &m.isolation)) {
      return bad("malformed probe");
    }
    m.type = Message::Type::kProbe;
    return m;
  }
  if (j.size() != 2 || !j.contains("result") || !j.contains("isolation")) {
    return bad("an unknown line");
  }
  if (!string_at(j, "isolation", kMaxIsolationBytes, &m.isolation)) return bad("bad isolation");
  const json& res = j["result"];
  if (!only_keys(res, {"kind", "kindId", "text", "summary", "words", "pages", "sheets", "slides",
                       "tables", "encoding", "chunks"})) {
    return bad("a result with unknown fields");
  }
  m.type = Message::Type::kResult;
  processing::Output& out = m.output;
  // The format: a real one (not kUnknown), named as its id says.
  auto kind_id = res.find("kindId");
  if (kind_id == res.end() || !kind_id->is_number_integer()) return bad("a result without a kindId");
  int64_t id = kind_id->get<int64_t>();
  if (id <= static_cast<int64_t>(processing::FileKind::kUnknown) ||
      id > static_cast<int64_t>(processing::FileKind::kImage)) {
    return bad("a result with an unknown kindId");
  }
  out.kind = static_cast<processing::FileKind>(id);
  std::string kind_name;
  if (!string_at(res, "kind", 32, &kind_name) || kind_name != processing::FileKindName(out.kind)) {
    return bad("a result whose kind does not match its kindId");
  }
  // Sizes first, copies after: nothing is built past the budget.
  auto text_it = res.find("text");
  if (text_it == res.end() || !text_it->is_string()) return bad("a result without text");
  const auto& text = text_it->get_ref<const std::string&>();
  const uint64_t budget = static_cast<uint64_t>(std::max<int64_t>(max_decoded_bytes, 0));
  uint64_t total = text.size();
  auto summary_it = res.find("summary");
  if (summary_it != res.end()) {
    if (!summary_it->is_string()) return bad("a result with a bad summary");
    total += summary_it->get_ref<const std::string&>().size();
  }
  // Over the budget: the file's text is too large, as when the raw output
  // passes the cap (sandbox.cc), not a broken child.
  const auto too_large = [] { return ResourceExhausted(kExtractedTooLargeMessage); };
  if (total > budget) return too_large();
  const json* chunks = nullptr;
  if (auto c = res.find("chunks"); c != res.end()) {
    if (!c->is_array() || c->size() > kMaxChunks) return bad("a result with bad chunks");
    chunks = &*c;
    for (const auto& chunk : *chunks) {
      if (only_keys(chunk, {"t"}) && chunk.size() == 1 && chunk["t"].is_string()) {
        total += chunk["t"].get_ref<const std::string&>().size();
      } else if (only_keys(chunk, {"o", "n"}) && chunk.size() == 2 && chunk["o"].is_number_unsigned() &&
                 chunk["n"].is_number_unsigned()) {
        uint64_t o = chunk["o"].get<uint64_t>(), n = chunk["n"].get<uint64_t>();
        if (o > text.size() || n > text.size() - o) return bad("a chunk outside its text");
        total += n;
      } else {
        return bad("a malformed chunk");
      }
      if (total > budget) return too_large();
    }
  }
  if (!count_at(res, "words", &out.words) || !count_at(res, "pages", &out.pages) ||
      !count_at(res, "sheets", &out.sheets) || !count_at(res, "slides", &out.slides) ||
      !count_at(res, "tables", &out.tables)) {
    return bad("a result with a bad count");
  }
  if (res.contains("encoding")) {
    if (!string_at(res, "encoding", 16, &out.encoding)) return bad("a result with a bad encoding");
    static constexpr std::string_view kEncodings[] = {"", "utf-8", "utf-16le", "utf-16be", "latin1"};
    if (std::find(std::begin(kEncodings), std::end(kEncodings), out.encoding) == std::end(kEncodings)) {
      return bad("a result with an unknown encoding");
    }
  }
  out.text = text;
  if (summary_it != res.end()) out.summary = summary_it->get<std::string>();
  if (chunks != nullptr) {
    out.chunks.reserve(chunks->size());
    for (const auto& chunk : *chunks) {
      if (chunk.contains("t")) {
        out.chunks.push_back(chunk["t"].get<std::string>());
      } else {
        out.chunks.push_back(out.text.substr(chunk["o"].get<uint64_t>(), chunk["n"].get<uint64_t>()));
      }
    }
  }
  return m;
}

}  // namespace conveyor::worker::sandbox
