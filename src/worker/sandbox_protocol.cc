#include "worker/sandbox_protocol.h"

#include <nlohmann/json.hpp>

namespace conveyor::worker::sandbox {
namespace {

using nlohmann::json;

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

constexpr Errc kAllCodes[] = {
    Errc::kInvalidArgument, Errc::kNotFound,         Errc::kAlreadyExists,
    Errc::kUnauthenticated, Errc::kPermissionDenied, Errc::kResourceExhausted,
    Errc::kFailedPrecondition, Errc::kAborted,       Errc::kUnavailable,
    Errc::kDeadlineExceeded, Errc::kDataLoss,        Errc::kCancelled,
    Errc::kInternal};

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

template <class O>
void DecodeExtras(const json& j, O& out) {
  auto num = [&](const char* key, auto& field) {
    if (j.contains(key) && j[key].is_number_integer()) field = j[key].get<int64_t>();
  };
  if constexpr (requires { out.pages; }) num("pages", out.pages);
  if constexpr (requires { out.sheets; }) num("sheets", out.sheets);
  if constexpr (requires { out.slides; }) num("slides", out.slides);
  if constexpr (requires { out.tables; }) num("tables", out.tables);
  if constexpr (requires { out.encoding; }) {
    if (j.contains("encoding") && j["encoding"].is_string()) out.encoding = j["encoding"];
  }
}

}  // namespace

Errc ErrcFromName(std::string_view name) {
  for (Errc e : kAllCodes) {
    if (ErrcName(e) == name) return e;
  }
  return Errc::kInternal;
}

std::string EncodeRequest(const Request& r) {
  json j = {{"path", r.input.path},
            {"nameHint", r.input.name_hint},
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
  if (!j.is_object() || !j.contains("path") || !j["path"].is_string()) {
    return InvalidArgument("extract request is not a JSON object with a path");
  }
  Request r;
  r.input.path = j["path"].get<std::string>();
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

Result<Message> DecodeLine(std::string_view line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return InvalidArgument("extract child wrote a line that is not JSON");
  Message m;
  if (auto p = j.find("progress"); p != j.end() && p->is_object()) {
    m.type = Message::Type::kProgress;
    if (p->contains("stage") && (*p)["stage"].is_string()) m.stage = (*p)["stage"];
    if (p->contains("percent") && (*p)["percent"].is_number_integer()) m.percent = (*p)["percent"];
    return m;
  }
  if (auto e = j.find("error"); e != j.end() && e->is_object()) {
    m.type = Message::Type::kError;
    std::string code = e->contains("code") && (*e)["code"].is_string() ? (*e)["code"].get<std::string>() : "";
    std::string message =
        e->contains("message") && (*e)["message"].is_string() ? (*e)["message"].get<std::string>() : "";
    Errc c = ErrcFromName(code);
    if (c == Errc::kOk) c = Errc::kInternal;
    m.error = Status(c, message);
    return m;
  }
  auto r = j.find("result");
  if (r == j.end() || !r->is_object()) return InvalidArgument("extract child wrote an unknown line");
  m.type = Message::Type::kResult;
  if (j.contains("isolation") && j["isolation"].is_string()) m.isolation = j["isolation"];
  const json& res = *r;
  if (!res.contains("text") || !res["text"].is_string()) {
    return InvalidArgument("extract result has no text");
  }
  processing::Output& out = m.output;
  out.text = res["text"].get<std::string>();
  if (res.contains("kindId") && res["kindId"].is_number_integer()) {
    out.kind = static_cast<processing::FileKind>(res["kindId"].get<int>());
  }
  if (res.contains("summary") && res["summary"].is_string()) out.summary = res["summary"];
  if (res.contains("words") && res["words"].is_number_integer()) out.words = res["words"];
  DecodeExtras(res, out);
  if (res.contains("chunks") && res["chunks"].is_array()) {
    for (const auto& c : res["chunks"]) {
      if (c.contains("t") && c["t"].is_string()) {
        out.chunks.push_back(c["t"].get<std::string>());
      } else if (c.contains("o") && c.contains("n") && c["o"].is_number_unsigned() &&
                 c["n"].is_number_unsigned()) {
        uint64_t o = c["o"], n = c["n"];
        if (o > out.text.size() || n > out.text.size() - o) {
          return InvalidArgument("extract result has a chunk outside its text");
        }
        out.chunks.push_back(out.text.substr(o, n));
      } else {
        return InvalidArgument("extract result has a malformed chunk");
      }
    }
  }
  return m;
}

}  // namespace conveyor::worker::sandbox
