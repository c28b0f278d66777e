#include "storage/snippet.h"

#include <algorithm>
#include <cstddef>

#include "core/words.h"

namespace conveyor::storage {
namespace {

struct Word {
  size_t begin = 0;  // byte range in the text, apostrophes included
  size_t end = 0;
  int term = -1;  // index in the terms, -1 when none
};

// The words of `text`, each with the term it equals.
std::vector<Word> Tokenize(std::string_view text, const std::vector<std::string>& terms) {
  std::vector<Word> words;
  ForEachWord(text, [&](size_t begin, size_t end, const std::string& folded) {
    Word w{begin, end, -1};
    for (size_t t = 0; t < terms.size(); ++t) {
      if (terms[t] == folded) {
        w.term = static_cast<int>(t);
        break;
      }
    }
    words.push_back(w);
  });
  return words;
}

}  // namespace

int CountTermHits(std::string_view text, const std::vector<std::string>& terms) {
  int n = 0;
  for (const Word& w : Tokenize(text, terms)) n += w.term >= 0 ? 1 : 0;
  return n;
}

std::string TermSnippet(std::string_view text, const std::vector<std::string>& terms,
                        int max_words) {
  if (max_words < 1) return "";
  const std::vector<Word> words = Tokenize(text, terms);
  std::vector<size_t> hits;
  for (size_t i = 0; i < words.size(); ++i) {
    if (words[i].term >= 0) hits.push_back(i);
  }
  if (hits.empty()) return "";
  const size_t width = std::min(static_cast<size_t>(max_words), words.size());

  // The best window starting at a match: most distinct terms, then most
  // matches; the first wins ties.
  size_t best_first = 0, best_last = 0;
  int best_distinct = -1, best_total = -1;
  std::vector<char> seen(terms.size());
  for (size_t h = 0; h < hits.size(); ++h) {
    std::fill(seen.begin(), seen.end(), 0);
    int distinct = 0, total = 0;
    size_t last = hits[h];
    for (size_t k = h; k < hits.size() && hits[k] < hits[h] + width; ++k) {
      const int t = words[hits[k]].term;
      if (!seen[static_cast<size_t>(t)]) {
        seen[static_cast<size_t>(t)] = 1;
        ++distinct;
      }
      ++total;
      last = hits[k];
    }
    if (distinct > best_distinct || (distinct == best_distinct && total > best_total)) {
      best_distinct = distinct;
      best_total = total;
      best_first = hits[h];
      best_last = last;
    }
  }
  // Centre the matches in the window, within the text.
  const size_t span = best_last - best_first + 1;
  size_t start = best_first - std::min(best_first, (width - span) / 2);
  start = std::min(start, words.size() - width);
  const size_t stop = start + width;  // one past the window's last word

  std::string out;
  if (start > 0) out += "…";
  for (size_t i = start; i < stop; ++i) {
    const Word& w = words[i];
    if (i > start) out.append(text.substr(words[i - 1].end, w.begin - words[i - 1].end));
    if (w.term >= 0) out += "**";
    out.append(text.substr(w.begin, w.end - w.begin));
    if (w.term >= 0) out += "**";
  }
  if (stop < words.size()) {
    out += "…";
  } else {
    // The window reaches the end: what follows the last word, but the
    // trailing white space.
    std::string_view rest = text.substr(words[stop - 1].end);
    while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\n' || rest.back() == '\r' ||
                             rest.back() == '\t')) {
      rest.remove_suffix(1);
    }
    out.append(rest);
  }
  return out;
}

std::string BestChunkSnippet(const std::vector<std::string>& chunks,
                             const std::vector<std::string>& terms, int max_words) {
  const std::string* best = nullptr;
  int best_hits = 0;
  for (const auto& chunk : chunks) {
    const int hits = CountTermHits(chunk, terms);
    if (hits > best_hits) {
      best_hits = hits;
      best = &chunk;
    }
  }
  return best == nullptr ? "" : TermSnippet(*best, terms, max_words);
}

}  // namespace conveyor::storage
