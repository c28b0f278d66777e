#include "worker/references.h"

#include <algorithm>

#include "processing/analyzer.h"
#include "storage/metadata_store.h"

namespace conveyor::worker {

std::vector<std::string> IndexTerms(const std::string& text) {
  return processing::ExtractKeywords(text, kIndexTerms);
}

Result<std::vector<Reference>> FindReferences(storage::MetadataStore& store,
                                              const std::string& user_id,
                                              const std::string& session_id,
                                              const std::string& current_file_id,
                                              const std::vector<std::string>& terms,
                                              const ReferenceSettings& settings) {
  std::vector<std::string> lowered;
  for (std::string t : terms) {
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : static_cast<char>(c);
    });
    lowered.push_back(std::move(t));
  }
  storage::RelatedQuery q;
  q.user_id = user_id;
  q.session_id = session_id;
  q.exclude_file_id = current_file_id;
  q.terms = storage::CleanTerms(
      lowered, static_cast<size_t>(std::clamp(settings.max_terms, 0, storage::kMaxRelatedTerms)));
  q.per_term_limit = settings.per_term_limit;
  std::vector<Reference> out;
  if (q.terms.empty() || settings.max_references <= 0) return out;
  // Files holding fewer terms than the minimum come last in the store's
  // order, so asking for max_references and filtering keeps the best ones.
  q.limit = settings.max_references;
  auto files = store.FindRelatedFiles(q);
  if (!files) return files.status();
  for (auto& f : *files) {
    if (static_cast<int>(f.terms.size()) < std::max(settings.min_shared_terms, 1)) continue;
    out.push_back({std::move(f.file_id), std::move(f.job_id), std::move(f.snippet),
                   std::move(f.terms)});
  }
  return out;
}

}  // namespace conveyor::worker
