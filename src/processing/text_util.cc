// UTF-8, word, CSV helpers and the per-kind extractors.
#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>

#include "core/ids.h"
#include "core/words.h"
#include "processing/internal/text_util.h"

namespace conveyor::processing::internal {
namespace {

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// JSON deeper than this is refused before parsing: rendering it recurses, and
// no document a person wants summarised nests this deep.
constexpr int kMaxJsonDepth = 256;
// Longest value rendered on one "key: value" line of JSON before it is cut.
constexpr size_t kMaxJsonValueBytes = 2000;
// Array elements rendered per array; the rest is counted, not listed.
constexpr size_t kMaxJsonArrayItems = 1000;
// Column names listed in a CSV/JSON description sentence.
constexpr size_t kMaxListedNames = 10;

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}


// Lines of `raw` without their terminators (LF, CRLF or lone CR).
std::vector<std::string_view> Lines(std::string_view raw) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' || raw[i] == '\r') {
      lines.push_back(raw.substr(start, i - start));
      if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < raw.size()) lines.push_back(raw.substr(start));
  return lines;
}

}  // namespace

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kMaxListedNames; ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  if (names.size() > kMaxListedNames) out += ", …";
  return out;
}

size_t Utf8Prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t n = max;
  while (n > 0 && IsContinuation(static_cast<unsigned char>(s[n]))) --n;
  return n;
}

size_t Utf8Forward(std::string_view s, size_t pos) {
  while (pos < s.size() && IsContinuation(static_cast<unsigned char>(s[pos]))) ++pos;
  return std::min(pos, s.size());
}

bool IsValidUtf8(std::string_view s, bool allow_truncated_tail) {
  if (conveyor::IsValidUtf8(s)) return true;
  if (!allow_truncated_tail) return false;
  // A window may end inside a code point: set aside a last sequence that is
  // a valid lead byte followed by fewer continuation bytes than it needs.
  size_t lead = s.size();
  while (lead > 0 && s.size() - lead < 3 && IsContinuation(static_cast<unsigned char>(s[lead - 1]))) {
    --lead;
  }
  if (lead == 0) return false;
  --lead;
  const auto c = static_cast<unsigned char>(s[lead]);
  const size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
  if (need == 0 || s.size() - lead >= need) return false;
  return conveyor::IsValidUtf8(s.substr(0, lead));
}

bool LooksLikeText(std::string_view s, bool allow_truncated_tail) {
  if (s.find('\0') != std::string_view::npos) return false;
  if (!IsValidUtf8(s, allow_truncated_tail)) return false;
  size_t controls = 0;
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' && c != 0x1B) ||
        c == 0x7F) {
      ++controls;
    }
  }
  // One stray control character per 1000 bytes passes (pasted terminal output);
  // binary formats have far more.
  return controls * 1000 <= s.size();
}

std::string_view StripBom(std::string_view s) {
  if (s.starts_with("\xEF\xBB\xBF")) s.remove_prefix(3);
  return s;
}

std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> out;
  ForEachWord(text, [&](size_t, size_t, const std::string& folded) { out.push_back(folded); });
  return out;
}

int64_t CountWords(std::string_view text) {
  int64_t n = 0;
  bool in_token = false, has_word_char = false;
  for (unsigned char c : text) {
    if (std::isspace(c)) {
      if (in_token && has_word_char) ++n;
      in_token = has_word_char = false;
    } else {
      in_token = true;
      if (IsAsciiAlnum(c) || c >= 0x80) has_word_char = true;
    }
  }
  if (in_token && has_word_char) ++n;
  return n;
}

std::vector<std::vector<std::string>> ParseCsv(std::string_view text, char delimiter,
                                               bool truncated, size_t max_records) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool in_quotes = false, field_started = false, complete = true;
  auto end_record = [&] {
    record.push_back(std::move(field));
    field.clear();
    field_started = false;
    // A blank line is not a record.
    if (!(record.size() == 1 && record[0].empty())) records.push_back(std::move(record));
    record.clear();
  };
  size_t i = 0;
  for (; i < text.size() && records.size() < max_records; ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = true;
      field_started = true;
    } else if (c == delimiter) {
      record.push_back(std::move(field));
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
    } else {
      field += c;
      field_started = true;
    }
  }
  if (records.size() < max_records && (!record.empty() || field_started || !field.empty())) {
    complete = !in_quotes;
    if (!truncated && complete) end_record();
  }
  return records;
}

char DetectCsvDelimiter(std::string_view sample, bool truncated, bool name_says_csv) {
  // A sample is CSV for a delimiter when every record has the same number of
  // fields, at least two. The candidate giving the most fields wins.
  constexpr size_t kSampleRecords = 50;
  char best = '\0';
  size_t best_fields = 1;
  for (char d : {',', '\t', ';', '|'}) {
    auto records = ParseCsv(sample, d, truncated, kSampleRecords);
    if (records.size() < 2) continue;
    size_t fields = records[0].size();
    if (fields < 2) continue;
    bool consistent = std::all_of(records.begin(), records.end(),
                                  [&](const auto& r) { return r.size() == fields; });
    if (!consistent) continue;
    // Two lines of prose that happen to hold one comma each are not a table:
    // without the name's word for it, ask for a third row or a second column.
    if (!name_says_csv && records.size() < 3 && fields < 3) continue;
    // Prose has long "fields"; tables have short ones.
    size_t total = 0, count = 0;
    for (const auto& r : records) {
      for (const auto& f : r) {
        total += f.size();
        ++count;
      }
    }
    if (!name_says_csv && count > 0 && total / count > 200) continue;
    if (fields > best_fields) {
      best = d;
      best_fields = fields;
    }
  }
  return best;
}

std::string ExtractPlainText(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r') {
      out += '\n';
      if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    } else {
      out += raw[i];
    }
  }
  return out;
}

std::string ExtractMarkdown(std::string_view raw, bool keep_code) {
  // Line by line: block markers (headings, quotes, fences, table rules) go,
  // inline markup (emphasis, code ticks, links, images) keeps only its text.
  std::string out;
  out.reserve(raw.size());
  bool in_fence = false;
  for (std::string_view line : Lines(raw)) {
    std::string_view t = TrimView(line);
    if (t.starts_with("```") || t.starts_with("~~~")) {
      in_fence = !in_fence;
      continue;
    }
    if (in_fence) {
      if (!keep_code) continue;
      out.append(line);
      out += '\n';
      continue;
    }
    // Table rule: |---|:--:| and the like.
    if (!t.empty() && t.find_first_not_of("|-: \t") == std::string_view::npos &&
        t.find("--") != std::string_view::npos) {
      continue;
    }
    // Horizontal rules.
    if (t == "---" || t == "***" || t == "___") {
      out += '\n';
      continue;
    }
    std::string_view body = t;
    size_t hashes = 0;
    while (hashes < body.size() && body[hashes] == '#') ++hashes;
    bool heading = hashes >= 1 && hashes <= 6 && (hashes == body.size() || body[hashes] == ' ');
    if (heading) body = TrimView(body.substr(hashes));
    while (body.starts_with(">")) body = TrimView(body.substr(1));
    std::string text;
    for (size_t i = 0; i < body.size(); ++i) {
      char c = body[i];
      if (c == '!' && i + 1 < body.size() && body[i + 1] == '[') continue;  // image: keep alt
      if (c == '[') {
        // [text](url) -> text; a bare [x] stays.
        size_t close = body.find(']', i + 1);
        if (close != std::string_view::npos && close + 1 < body.size() && body[close + 1] == '(') {
          size_t paren = body.find(')', close + 2);
          if (paren != std::string_view::npos) {
            text.append(body.substr(i + 1, close - i - 1));
            i = paren;
            continue;
          }
        }
      }
      if (c == '*' || c == '`' || (c == '_' && (i + 1 < body.size() && body[i + 1] == '_'))) {
        continue;
      }
      if (c == '_' && i > 0 && i + 1 < body.size() && IsAsciiAlnum(static_cast<unsigned char>(body[i - 1])) &&
          IsAsciiAlnum(static_cast<unsigned char>(body[i + 1]))) {
        text += c;  // snake_case_word keeps its underscores
        continue;
      }
      if (c == '_') continue;
      if (c == '|') {
        text += " | ";
        continue;
      }
      text += c;
    }
    // List items keep a dash so they still read as a list; "* item" lost its
    // star above, so restore it.
    std::string_view trimmed_line = TrimView(line);
    if ((trimmed_line.starts_with("* ") || trimmed_line.starts_with("+ ")) && !heading) {
      text = "- " + std::string(TrimView(text));
    }
    std::string_view cleaned = TrimView(text);
    bool table_row = cleaned.starts_with("|");
    if (table_row) cleaned = TrimView(cleaned.substr(1));
    if (cleaned.ends_with("|")) cleaned = TrimView(cleaned.substr(0, cleaned.size() - 1));
    out.append(cleaned);
    // Headings and table rows stand alone, never run into the next line's
    // sentence.
    out += heading || table_row ? "\n\n" : "\n";
  }
  return out;
}

namespace {

int MaxJsonDepth(std::string_view s) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') max_depth = std::max(max_depth, ++depth);
    else if (c == '}' || c == ']') --depth;
  }
  return max_depth;
}

std::string Scalar(const nlohmann::json& v) {
  std::string s;
  if (v.is_string()) {
    s = v.get<std::string>();
  } else {
    s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (s.size() > kMaxJsonValueBytes) s = s.substr(0, Utf8Prefix(s, kMaxJsonValueBytes)) + "…";
  return s;
}

void Flatten(const nlohmann::json& v, const std::string& path, std::string* out) {
  if (v.is_object()) {
    if (v.empty()) {
      *out += path + ": {}\n";
      return;
    }
    for (auto it = v.begin(); it != v.end(); ++it) {
      Flatten(it.value(), path.empty() ? it.key() : path + "." + it.key(), out);
    }
    return;
  }
  if (v.is_array()) {
    bool scalars = std::all_of(v.begin(), v.end(), [](const auto& e) { return e.is_primitive(); });
    if (scalars) {
      // A list of values reads best on one line.
      std::string line = (path.empty() ? std::string("items") : path) + ": ";
      size_t n = 0;
      for (const auto& e : v) {
        if (n == kMaxJsonArrayItems) {
          line += ", … (" + std::to_string(v.size()) + " in all)";
          break;
        }
        if (n++ > 0) line += ", ";
        line += Scalar(e);
      }
      *out += line + "\n";
      return;
    }
    size_t i = 0;
    for (const auto& e : v) {
      if (i == kMaxJsonArrayItems) {
        *out += path + ": … (" + std::to_string(v.size()) + " items in all)\n";
        break;
      }
      Flatten(e, path + "[" + std::to_string(i++) + "]", out);
      // Records in an array are separated like paragraphs.
      if (e.is_structured()) *out += "\n";
    }
    return;
  }
  *out += (path.empty() ? std::string("value") : path) + ": " + Scalar(v) + "\n";
}

std::string Describe(const nlohmann::json& doc, bool lines) {
  if (lines) return "JSON Lines file with " + std::to_string(doc.size()) + " records.";
  if (doc.is_object()) {
    std::vector<std::string> keys;
    for (auto it = doc.begin(); it != doc.end(); ++it) keys.push_back(it.key());
    return "JSON object with " + std::to_string(doc.size()) + (doc.size() == 1 ? " key" : " keys") +
           (keys.empty() ? std::string(".") : ": " + JoinNames(keys) + ".");
  }
  if (doc.is_array()) {
    return "JSON array of " + std::to_string(doc.size()) + (doc.size() == 1 ? " item." : " items.");
  }
  return "JSON value.";
}

std::string CleanJsonError(const std::string& what) {
  // "[json.exception.parse_error.101] parse error at ..." -> "parse error at ..."
  size_t close = what.find("] ");
  return close != std::string::npos && what.starts_with("[json.") ? what.substr(close + 2) : what;
}

}  // namespace

Result<std::string> ExtractJson(std::string_view raw, std::string* stats) {
  if (MaxJsonDepth(raw) > kMaxJsonDepth) {
    return InvalidArgument("Invalid JSON: nested deeper than " + std::to_string(kMaxJsonDepth) +
                           " levels");
  }
  nlohmann::json doc;
  bool json_lines = false;
  try {
    doc = nlohmann::json::parse(raw.begin(), raw.end());
  } catch (const nlohmann::json::exception& whole_error) {
    // JSON Lines: one document per line. Accepted only when every non-blank
    // line parses and there are at least two; otherwise the whole-document
    // error is the truthful one.
    nlohmann::json records = nlohmann::json::array();
    bool all_ok = true;
    for (std::string_view line : Lines(raw)) {
      line = TrimView(line);
      if (line.empty()) continue;
      try {
        records.push_back(nlohmann::json::parse(line.begin(), line.end()));
      } catch (const nlohmann::json::exception&) {
        all_ok = false;
        break;
      }
    }
    if (!all_ok || records.size() < 2) {
      return InvalidArgument("Invalid JSON: " + CleanJsonError(whole_error.what()));
    }
    doc = std::move(records);
    json_lines = true;
  }
  try {
    std::string out;
    Flatten(doc, "", &out);
    if (stats != nullptr) *stats = Describe(doc, json_lines);
    return out;
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument("Invalid JSON: " + CleanJsonError(e.what()));
  }
}

std::string RecordsToText(const std::vector<std::vector<std::string>>& records,
                          std::vector<std::string>* header_out) {
  std::string out;
  if (records.empty()) return out;
  std::vector<std::string> header;
  for (const auto& h : records[0]) header.emplace_back(TrimView(h));
  if (records.size() == 1) {
    // A header alone is the only data there is: show it as a row.
    std::string line;
    for (const auto& h : header) {
      if (h.empty()) continue;
      if (!line.empty()) line += " | ";
      line += h;
    }
    if (!line.empty()) out += line + "\n";
  }
  // Each data row becomes one line "col: value, col: value", so a row reads
  // as a sentence and searches find values next to their column names.
  for (size_t r = 1; r < records.size(); ++r) {
    std::string line;
    for (size_t c = 0; c < records[r].size(); ++c) {
      std::string_view value = TrimView(records[r][c]);
      if (value.empty()) continue;
      if (!line.empty()) line += ", ";
      std::string name = c < header.size() && !header[c].empty() ? header[c]
                                                                : "column " + std::to_string(c + 1);
      line += name + ": " + std::string(value);
    }
    if (!line.empty()) out += line + ".\n";
  }
  if (header_out != nullptr) *header_out = std::move(header);
  return out;
}

std::string ExtractCsv(std::string_view raw, char delimiter, std::string* stats) {
  auto records = ParseCsv(raw, delimiter, false, SIZE_MAX);
  if (records.empty()) {
    if (stats != nullptr) *stats = "Empty CSV table.";
    return {};
  }
  std::vector<std::string> header;
  std::string out = records.size() > 1 ? RecordsToText(records, &header) : std::string();
  if (records.size() <= 1) {
    for (const auto& h : records[0]) header.emplace_back(TrimView(h));
  }
  if (stats != nullptr) {
    size_t rows = records.size() - 1;
    *stats = "CSV table with " + std::to_string(rows) + (rows == 1 ? " row" : " rows") + " and " +
             std::to_string(header.size()) + " columns: " + JoinNames(header) + ".";
  }
  return out;
}

}  // namespace conveyor::processing::internal
