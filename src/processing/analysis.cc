// SplitSentences, Summarize and Chunk.
//
// The summary is extractive: it scores each sentence by the cosine between
// its TF-IDF vector and the document's centroid (the sum of all sentence
// vectors), so sentences made of the document's characteristic words win,
// and returns the best few in their original order. No model, no network:
// deterministic, fast, and always made of the author's own words.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "processing/internal/analysis.h"
#include "processing/internal/text_util.h"
#include "processing/processing.h"

namespace conveyor::processing {
namespace {

// Sentences scored per document; a 16 MiB text has far more, and the first
// thousands are enough to find its gist.
constexpr size_t kMaxScoredSentences = 5000;
// A summary sentence longer than this is cut at a word boundary.
constexpr size_t kMaxSummarySentenceBytes = 400;
// Sentences with fewer content words than this are half-weighted (headings,
// fragments).
constexpr size_t kShortSentenceWords = 4;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }

const std::unordered_set<std::string>& StopWords() {
  static const std::unordered_set<std::string> kWords = {
      "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
      "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he",
      "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "may", "more", "most",
      "no", "not", "of", "on", "one", "or", "other", "our", "out", "she", "so", "some", "such",
      "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to",
      "up", "was", "we", "were", "what", "when", "which", "who", "will", "with", "would", "you",
      "your"};
  return kWords;
}

// Abbreviations after which a period does not end a sentence.
bool IsAbbreviation(std::string_view word) {
  static const std::unordered_set<std::string> kAbbrev = {
      "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc",
      "ltd", "co", "no", "fig", "approx", "dept", "est", "cf", "al"};
  std::string lower;
  for (char c : word) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.size() == 1 && std::isalpha(static_cast<unsigned char>(lower[0]))) return true;  // initials
  return kAbbrev.count(lower) > 0;
}

// `s` with runs of whitespace collapsed to one space and trimmed.
std::string Collapse(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (char c : s) {
    if (IsSpace(c)) {
      space = !out.empty();
    } else {
      if (space) out += ' ';
      space = false;
      out += c;
    }
  }
  return out;
}

std::vector<std::string> ContentWords(std::string_view sentence) {
  std::vector<std::string> out;
  for (auto& w : internal::Words(sentence)) {
    bool ascii = std::all_of(w.begin(), w.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (ascii && w.size() < 2) continue;
    if (StopWords().count(w) > 0) continue;
    out.push_back(std::move(w));
  }
  return out;
}

std::string CutSentence(const std::string& s) {
  if (s.size() <= kMaxSummarySentenceBytes) return s;
  size_t cut = internal::Utf8Prefix(s, kMaxSummarySentenceBytes);
  size_t space = s.rfind(' ', cut);
  if (space != std::string::npos && space > cut / 2) cut = space;
  return s.substr(0, cut) + "…";
}

}  // namespace

std::vector<std::string> SplitSentences(const std::string& text) {
  std::vector<std::string> out;
  const size_t n = text.size();
  size_t start = 0;
  auto emit = [&](size_t end) {
    std::string s = Collapse(std::string_view(text).substr(start, end - start));
    if (!s.empty()) out.push_back(std::move(s));
    start = end;
  };
  for (size_t i = 0; i < n; ++i) {
    char c = text[i];
    if (c == '\n') {
      // Blank line: paragraph end. Otherwise a wrapped line continues the
      // sentence when the next line starts in lower case; lines starting
      // otherwise (headings, list items, table rows) stand alone.
      size_t j = i + 1;
      while (j < n && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) ++j;
      if (j >= n || text[j] == '\n' || !IsLower(text[j])) emit(i + 1);
      continue;
    }
    size_t end = 0;  // one past the terminator, when this is one
    if (c == '.' || c == '!' || c == '?') {
      end = i + 1;
    } else if (text.compare(i, 3, "\xE2\x80\xA6") == 0 ||   // …
               text.compare(i, 3, "\xE3\x80\x82") == 0 ||   // 。
               text.compare(i, 3, "\xEF\xBC\x81") == 0 ||   // ！
               text.compare(i, 3, "\xEF\xBC\x9F") == 0) {   // ？
      end = i + 3;
      // CJK text has no space after its stops (the ellipsis is not one).
      if (c == '\xE3' || c == '\xEF') {
        i = end - 1;
        emit(end);
        continue;
      }
    }
    if (end == 0) continue;
    // Swallow repeated terminators and closing quotes/brackets: 'Really?!"'.
    while (end < n && (text[end] == '.' || text[end] == '!' || text[end] == '?' || text[end] == '"' ||
                       text[end] == '\'' || text[end] == ')' || text[end] == ']')) {
      ++end;
    }
    if (end < n && !IsSpace(text[end])) {  // "3.14", "example.com"
      i = end - 1;
      continue;
    }
    if (c == '.') {
      size_t w = i;
      while (w > start && !IsSpace(text[w - 1])) --w;
      std::string_view word = std::string_view(text).substr(w, i - w);
      size_t next = end;
      while (next < n && IsSpace(text[next])) ++next;
      if (next < n && IsLower(text[next])) {  // "the U.S. economy", "approx. ten"
        i = end - 1;
        continue;
      }
      if (IsAbbreviation(word) && next < n && text[next] != '\n') {
        i = end - 1;
        continue;
      }
    }
    i = end - 1;
    emit(end);
  }
  if (start < n) emit(n);
  return out;
}

std::string Summarize(const std::string& text, int max_sentences) {
  return internal::SummarizeFocused(text, max_sentences, "");
}

std::string internal::SummarizeFocused(const std::string& text, int max_sentences,
                                       const std::string& focus) {
  if (max_sentences <= 0) return {};
  std::vector<std::string> sentences = SplitSentences(text);
  if (sentences.size() > kMaxScoredSentences) sentences.resize(kMaxScoredSentences);
  const size_t count = sentences.size();
  std::vector<size_t> chosen;
  if (count <= static_cast<size_t>(max_sentences)) {
    chosen.resize(count);
    std::iota(chosen.begin(), chosen.end(), 0);
  } else {
    // Term counts per sentence and document frequencies.
    std::vector<std::unordered_map<std::string, double>> tf(count);
    std::unordered_map<std::string, double> df;
    std::vector<size_t> lengths(count);
    for (size_t i = 0; i < count; ++i) {
      auto words = ContentWords(sentences[i]);
      lengths[i] = words.size();
      for (auto& w : words) tf[i][w] += 1;
      for (auto& [w, _] : tf[i]) df[w] += 1;
    }
    auto idf = [&](const std::string& w) {
      auto it = df.find(w);
      double d = it == df.end() ? 1.0 : it->second;
      return std::log(1.0 + static_cast<double>(count) / d);
    };
    std::unordered_map<std::string, double> centroid;
    for (size_t i = 0; i < count; ++i) {
      for (auto& [w, c] : tf[i]) centroid[w] += c * idf(w);
    }
    double centroid_norm = 0;
    for (auto& [w, v] : centroid) centroid_norm += v * v;
    centroid_norm = std::sqrt(centroid_norm);
    std::unordered_map<std::string, double> focus_vec;
    for (auto& w : ContentWords(focus)) focus_vec[w] += 1;

    std::vector<double> score(count, 0.0);
    for (size_t i = 0; i < count; ++i) {
      double dot = 0, norm = 0, focus_dot = 0;
      for (auto& [w, c] : tf[i]) {
        double v = c * idf(w);
        norm += v * v;
        dot += v * centroid[w];
        auto f = focus_vec.find(w);
        if (f != focus_vec.end()) focus_dot += v * f->second;
      }
      if (norm == 0 || centroid_norm == 0) continue;
      norm = std::sqrt(norm);
      score[i] = dot / (norm * centroid_norm);
      // Sentences about what the user asked for rank higher.
      if (!focus_vec.empty()) score[i] += 0.5 * focus_dot / norm / std::sqrt(focus_vec.size());
      if (lengths[i] < kShortSentenceWords) score[i] *= 0.5;
      // Table rows are dense with keywords but read badly as a summary; so
      // do run-ons far past a sentence's usual length.
      if (sentences[i].find(" | ") != std::string::npos) score[i] *= 0.3;
      if (sentences[i].size() > kMaxSummarySentenceBytes) score[i] *= 0.7;
      // Code and markup (braces, semicolons, operators) is not prose.
      size_t symbols = std::count_if(sentences[i].begin(), sentences[i].end(), [](char c) {
        return c == '{' || c == '}' || c == ';' || c == '=' || c == '(' || c == ')' || c == '<' ||
               c == '>' || c == '/' || c == '\\' || c == '$' || c == '#';
      });
      if (symbols * 25 > sentences[i].size()) score[i] *= 0.3;
      // A slight lead bias: openings tend to state the topic.
      score[i] += 0.05 * (1.0 - static_cast<double>(i) / static_cast<double>(count));
    }
    std::vector<size_t> order(count);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] > score[b]; });
    chosen.assign(order.begin(), order.begin() + max_sentences);
    std::sort(chosen.begin(), chosen.end());
  }
  std::string out;
  for (size_t i : chosen) {
    std::string s = CutSentence(sentences[i]);
    if (!out.empty()) out += ' ';
    out += s;
    // Headings and table rows have no stop; give them one so the summary reads.
    if (std::isalnum(static_cast<unsigned char>(out.back()))) out += '.';
  }
  return out;
}

std::vector<std::string> Chunk(const std::string& text, int chunk_chars, int overlap_chars) {
  // Sizes are in bytes of UTF-8; a 4-byte code point must fit in a chunk.
  const size_t chunk = static_cast<size_t>(std::max(chunk_chars, 8));
  const size_t overlap = std::min(static_cast<size_t>(std::max(overlap_chars, 0)), chunk / 2);
  std::vector<std::string> out;
  const std::string_view t = text;
  const size_t n = t.size();
  size_t start = 0;
  while (start < n && IsSpace(t[start])) ++start;
  while (start < n) {
    size_t end;
    if (n - start <= chunk) {
      end = n;
    } else {
      // The best break in the second half of the window: paragraph, line,
      // sentence, word, and at worst a code point boundary.
      size_t limit = start + chunk;
      size_t floor = start + chunk / 2;
      end = 0;
      auto find_back = [&](auto pred) -> size_t {
        for (size_t p = limit; p > floor; --p) {
          if (pred(p)) return p;
        }
        return 0;
      };
      end = find_back([&](size_t p) { return t[p - 1] == '\n' && p >= 2 && t[p - 2] == '\n'; });
      if (end == 0) end = find_back([&](size_t p) { return t[p - 1] == '\n'; });
      if (end == 0) {
        end = find_back([&](size_t p) {
          return IsSpace(t[p - 1]) && p >= 2 && (t[p - 2] == '.' || t[p - 2] == '!' || t[p - 2] == '?');
        });
      }
      if (end == 0) end = find_back([&](size_t p) { return IsSpace(t[p - 1]); });
      if (end == 0) end = start + internal::Utf8Prefix(t.substr(start), chunk);
      if (end <= start) end = internal::Utf8Forward(t, start + 1);  // defensive: always progress
    }
    // Trim whitespace at both ends of the piece.
    size_t a = start, b = end;
    while (a < b && IsSpace(t[a])) ++a;
    while (b > a && IsSpace(t[b - 1])) --b;
    if (b > a) out.emplace_back(t.substr(a, b - a));
    if (end >= n) break;
    // Next chunk starts `overlap` bytes back, moved forward to a word start,
    // so the context across the cut is in both chunks.
    size_t next = end;
    if (overlap > 0) {
      size_t back = internal::Utf8Forward(t, end - std::min(overlap, end - start - 1));
      size_t p = back;
      if (p > 0 && !IsSpace(t[p - 1])) {
        while (p < end && !IsSpace(t[p])) ++p;
      }
      // No space within the overlap: start mid-word rather than lose it.
      next = p < end ? p : back;
    }
    if (next <= start) next = end;
    while (next < n && IsSpace(t[next])) ++next;
    start = next;
  }
  return out;
}

}  // namespace conveyor::processing
