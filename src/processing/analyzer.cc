// The local analysis provider, keyword extraction and language detection.
//
// Keywords: words of the text that are no stop word of any supported
// language, no number and at least three letters long, scored by TF-IDF over
// the text's own paragraphs: tf * (1 + ln(P / df)). A word that is frequent
// overall ranks high; among equally frequent words, one concentrated in a
// few paragraphs (a topic) beats one spread thinly everywhere (filler).
//
// Language: the share of the text's words that are stop words of each
// language; the best wins when it covers enough of the text and clearly
// beats the runner-up. Stop words are the commonest words of a language, so
// a few hundred words of running text decide reliably; a table of numbers
// or a list of names stays "und".
#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "processing/analyzer.h"
#include "processing/analyzer_internal.h"
#include "processing/internal/analysis.h"
#include "processing/internal/text_util.h"

namespace conveyor::processing {
namespace {

// Words scanned for keywords and language; a 16 MiB text has millions and
// its first ones tell its topic and language well enough.
constexpr size_t kMaxScannedWords = 200000;
// Language detection needs this many words, and the winner must cover this
// share of them and beat the runner-up by this factor.
constexpr size_t kMinLanguageWords = 8;
constexpr double kMinLanguageShare = 0.08;
constexpr double kMinLanguageMargin = 1.3;
// Paragraphs longer than this many words are split for the df count, so a
// text without blank lines still has "documents".
constexpr size_t kSegmentWords = 200;

struct LanguageProfile {
  const char* code;
  const char* name;
  std::unordered_set<std::string> stop_words;
};

const std::vector<LanguageProfile>& Profiles() {
  static const std::vector<LanguageProfile> kProfiles = {
      {"en", "English",
       {"the", "and", "of", "to", "in", "is", "that", "it", "for", "was", "on", "are", "as", "with",
        "be", "at", "by", "this", "have", "from", "or", "an", "they", "which", "you", "were", "her",
        "all", "their", "there", "been", "has", "would", "what", "when", "will", "we", "more",
        "can", "if", "no", "out", "so", "said", "about", "than", "them", "into", "these", "could",
        "its", "who", "also", "not", "but", "his", "had", "our", "should", "other", "some",
        "how", "your", "may", "any", "only", "then", "such", "do", "does", "did", "a", "i", "he",
        "she", "my", "me", "us", "up", "one", "each", "most", "very", "after", "before", "over",
        "between", "both", "those", "while", "where", "why", "here", "just", "being", "because"}},
      {"de", "German",
       {"der", "die", "und", "in", "den", "von", "zu", "das", "mit", "sich", "des", "auf", "für",
        "ist", "im", "dem", "nicht", "ein", "eine", "als", "auch", "es", "an", "werden", "aus",
        "er", "hat", "dass", "sie", "nach", "wird", "bei", "einer", "um", "am", "sind", "noch",
        "wie", "einem", "über", "einen", "so", "zum", "war", "haben", "nur", "oder", "aber",
        "vor", "zur", "bis", "mehr", "durch", "man", "sein", "wurde", "sei", "wir", "ich", "kann",
        "ihre", "ihr", "diese", "dieser", "wenn", "keine", "unter", "sehr", "schon", "immer"}},
      {"fr", "French",
       {"le", "la", "les", "de", "des", "du", "et", "un", "une", "est", "en", "que", "qui", "dans",
        "pour", "pas", "au", "aux", "sur", "avec", "ce", "cette", "il", "elle", "ne", "se", "par",
        "plus", "sont", "ont", "mais", "ou", "nous", "vous", "ils", "leur", "comme", "été", "être",
        "son", "sa", "ses", "on", "fait", "tout", "aussi", "sans", "entre", "je", "lui", "mon",
        "cet", "ces", "très", "même", "où", "dont", "peut", "nos", "votre"}},
      {"es", "Spanish",
       {"el", "la", "los", "las", "de", "del", "y", "en", "un", "una", "que", "es", "por", "con",
        "para", "no", "se", "su", "sus", "al", "lo", "como", "más", "pero", "fue", "son", "este",
        "esta", "ha", "han", "le", "ya", "muy", "también", "entre", "cuando", "hay", "sin", "sobre",
        "todo", "ser", "está", "están", "nos", "yo", "porque", "esto", "donde", "desde", "puede",
        "hasta", "otro", "otra", "era", "ese", "esa"}},
      {"it", "Italian",
       {"il", "lo", "la", "gli", "le", "di", "del", "della", "dei", "delle", "che", "e", "è", "un",
        "una", "per", "non", "in", "con", "si", "da", "al", "alla", "nel", "nella", "sono", "ha",
        "come", "più", "ma", "anche", "questo", "questa", "se", "sul", "sulla", "cui", "essere",
        "tra", "fra", "suo", "sua", "loro", "molto", "stato", "dopo", "quando", "ci", "io", "noi",
        "hanno", "degli", "dalla", "nei"}},
      {"pt", "Portuguese",
       {"o", "a", "os", "as", "de", "do", "da", "dos", "das", "e", "em", "no", "na", "nos", "nas",
        "um", "uma", "que", "é", "para", "com", "não", "por", "se", "mais", "como", "mas", "foi",
        "ao", "à", "seu", "sua", "ou", "ser", "são", "está", "também", "já", "muito", "pelo",
        "pela", "quando", "isso", "este", "esta", "entre", "sem", "eu", "ele", "ela", "tem",
        "têm", "onde", "até", "depois", "assim", "pode"}},
      {"nl", "Dutch",
       {"de", "het", "een", "en", "van", "in", "is", "dat", "op", "te", "zijn", "voor", "met",
        "die", "niet", "aan", "er", "om", "ook", "als", "bij", "of", "door", "maar", "naar",
        "uit", "wordt", "worden", "dan", "nog", "wel", "werd", "kan", "hij", "zij", "ze", "we",
        "wij", "ik", "je", "dit", "deze", "hun", "tot", "over", "meer", "heeft", "hebben", "geen",
        "zo", "was", "waren", "al", "onder", "veel", "omdat"}},
  };
  return kProfiles;
}

// Words never taken as keywords: stop words of every profile plus filler
// that carries no topic.
const std::unordered_set<std::string>& NonKeywords() {
  static const std::unordered_set<std::string> kWords = [] {
    std::unordered_set<std::string> s;
    for (const auto& p : Profiles()) s.insert(p.stop_words.begin(), p.stop_words.end());
    for (const char* w : {"yes", "yet", "via", "per", "etc", "get", "got", "use", "used",
                          "using", "make", "made", "like", "well", "much", "many", "same",
                          "new", "first", "last", "next", "two", "three", "now", "see", "way",
                          "within", "without", "must", "might", "shall", "let", "lets", "true",
                          "false", "null", "none", "http", "https", "www", "com"}) {
      s.insert(w);
    }
    return s;
  }();
  return kWords;
}

// Letters in a UTF-8 word (code points that are not ASCII digits).
size_t LetterCount(const std::string& w) {
  size_t n = 0;
  for (unsigned char c : w) {
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    if (c >= '0' && c <= '9') continue;
    ++n;
  }
  return n;
}

bool IsKeywordCandidate(const std::string& w) {
  if (LetterCount(w) < 3) return false;
  if (std::all_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  return NonKeywords().count(w) == 0;
}

// The text as segments of words: paragraphs (blank-line separated), long
// ones cut every kSegmentWords words.
std::vector<std::vector<std::string>> Segments(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  size_t scanned = 0;
  size_t pos = 0;
  while (pos < text.size() && scanned < kMaxScannedWords) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    std::vector<std::string> words = internal::Words(std::string_view(text).substr(pos, end - pos));
    for (size_t i = 0; i < words.size() && scanned < kMaxScannedWords; i += kSegmentWords) {
      size_t stop = std::min(words.size(), i + kSegmentWords);
      out.emplace_back(std::make_move_iterator(words.begin() + i),
                       std::make_move_iterator(words.begin() + stop));
      scanned += stop - i;
    }
    pos = end + 2;
  }
  return out;
}

std::string KindLabel(FileKind kind) {
  static const std::map<std::string, std::string, std::less<>> kLabels = {
      {"text", "Plain text"},      {"markdown", "Markdown document"},
      {"csv", "CSV table"},        {"json", "JSON document"},
      {"pdf", "PDF document"},     {"docx", "Word document"},
      {"odt", "OpenDocument text"}, {"xlsx", "Excel workbook"},
      {"pptx", "PowerPoint presentation"}, {"html", "HTML page"}};
  std::string_view name = FileKindName(kind);
  auto it = kLabels.find(name);
  if (it != kLabels.end()) return it->second;
  if (name.empty() || name == "unknown") return "File";
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return upper + " file";
}

std::string Plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

class LocalAnalyzer : public Analyzer {
 public:
  explicit LocalAnalyzer(AnalyzerSettings settings) : settings_(std::move(settings)) {}

  Result<Analysis> Analyze(const AnalysisInput& in) override {
    Analysis a = internal::LocalFacts(in, settings_, "local");
    std::string body;
    if (a.words == 0) {
      a.summary = "The file contains no text.";
      return a;
    }
    if (!in.extract_summary.empty()) {
      body = in.extract_summary;
    } else {
      body = internal::DescribeCounts(in.kind, a) + "\n" +
             internal::SummarizeFocused(in.text, settings_.summary_sentences, in.message);
    }
    std::string tail;
    if (!a.keywords.empty()) {
      tail = "Key terms: ";
      for (size_t i = 0; i < a.keywords.size() && i < 5; ++i) {
        tail += (i ? ", " : "") + a.keywords[i];
      }
      tail += ".";
    }
    if (std::string lang = LanguageName(a.language); !lang.empty()) {
      tail += std::string(tail.empty() ? "" : " ") + "Written in " + lang + ".";
    }
    a.summary = tail.empty() ? body : body + "\n" + tail;
    return a;
  }

  std::string_view name() const override { return "local"; }

 private:
  const AnalyzerSettings settings_;
};

}  // namespace

std::vector<std::string> ExtractKeywords(const std::string& text, int max) {
  if (max <= 0) return {};
  auto segments = Segments(text);
  std::unordered_map<std::string, double> tf, df;
  for (const auto& seg : segments) {
    std::unordered_set<std::string> in_segment;
    for (const auto& w : seg) {
      if (!IsKeywordCandidate(w)) continue;
      tf[w] += 1;
      if (in_segment.insert(w).second) df[w] += 1;
    }
  }
  const double count = static_cast<double>(std::max<size_t>(segments.size(), 1));
  std::vector<std::pair<double, std::string>> scored;
  scored.reserve(tf.size());
  for (const auto& [w, f] : tf) {
    scored.emplace_back(f * (1.0 + std::log(count / df[w])), w);
  }
  std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return a.second < b.second;
  });
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && out.size() < static_cast<size_t>(max); ++i) {
    out.push_back(scored[i].second);
  }
  return out;
}

std::string DetectLanguage(const std::string& text) {
  std::vector<std::string> words = internal::Words(text.substr(0, internal::Utf8Prefix(text, 1 << 20)));
  if (words.size() > kMaxScannedWords) words.resize(kMaxScannedWords);
  if (words.size() < kMinLanguageWords) return "und";
  std::vector<size_t> hits(Profiles().size(), 0);
  for (const auto& w : words) {
    for (size_t i = 0; i < Profiles().size(); ++i) {
      if (Profiles()[i].stop_words.count(w) > 0) ++hits[i];
    }
  }
  size_t best = 0, second = 0;
  size_t best_i = 0;
  for (size_t i = 0; i < hits.size(); ++i) {
    if (hits[i] > best) {
      second = best;
      best = hits[i];
      best_i = i;
    } else if (hits[i] > second) {
      second = hits[i];
    }
  }
  if (static_cast<double>(best) < kMinLanguageShare * static_cast<double>(words.size())) return "und";
  if (static_cast<double>(best) < kMinLanguageMargin * static_cast<double>(second)) return "und";
  return Profiles()[best_i].code;
}

std::string LanguageName(const std::string& code) {
  for (const auto& p : Profiles()) {
    if (code == p.code) return p.name;
  }
  return "";
}

Analysis internal::LocalFacts(const AnalysisInput& in, const AnalyzerSettings& settings,
                              std::string provider) {
  Analysis a;
  a.provider = std::move(provider);
  a.words = in.words >= 0 ? in.words : internal::CountWords(in.text);
  a.pages = in.pages;
  a.tables = in.tables;
  a.keywords = ExtractKeywords(in.text, settings.max_keywords);
  a.language = DetectLanguage(in.text);
  return a;
}

std::string internal::DescribeCounts(FileKind kind, const Analysis& facts) {
  std::string s = KindLabel(kind) + ", " + Plural(facts.words, "word", "words");
  if (facts.pages > 0) s += ", " + Plural(facts.pages, "page", "pages");
  if (facts.tables > 0) s += ", " + Plural(facts.tables, "table", "tables");
  return s + ".";
}

Result<std::unique_ptr<Analyzer>> MakeAnalyzer(const AnalyzerSettings& settings) {
  if (settings.provider == "local") return std::unique_ptr<Analyzer>(new LocalAnalyzer(settings));
  if (settings.provider == "openai") {
    if (settings.base_url.empty()) return InvalidArgument("AI_BASE_URL is required by the openai provider");
    if (settings.model.empty()) return InvalidArgument("AI_MODEL is required by the openai provider");
    return internal::MakeOpenAiAnalyzer(settings);
  }
  return InvalidArgument("unknown analysis provider \"" + settings.provider +
                         "\" (expected local or openai)");
}

}  // namespace conveyor::processing
