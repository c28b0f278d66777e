#include "worker/references.h"

#include <algorithm>
#include <map>
#include <set>

#include "storage/metadata_store.h"

namespace conveyor::worker {

Result<std::vector<Reference>> FindReferences(storage::MetadataStore& store,
                                              const std::string& user_id,
                                              const std::string& session_id,
                                              const std::string& current_file_id,
                                              const std::vector<std::string>& keywords,
                                              const ReferenceSettings& settings) {
  std::vector<std::string> terms;
  std::set<std::string> seen;
  for (const auto& k : keywords) {
    if (static_cast<int>(terms.size()) >= settings.max_terms) break;
    if (k.empty() || !seen.insert(k).second) continue;
    terms.push_back(k);
  }
  std::vector<Reference> out;
  if (terms.empty() || settings.max_references <= 0) return out;

  std::map<std::string, Reference> by_file;
  auto note = [&](const storage::MemoryHit& hit) -> Reference& {
    auto [it, fresh] = by_file.try_emplace(hit.file_id);
    if (fresh) {
      it->second.file_id = hit.file_id;
      it->second.job_id = hit.job_id;
      it->second.snippet = hit.snippet;
      it->second.score = hit.score;
    }
    return it->second;
  };

  // All keywords together: the ranking and each file's best snippet (hits
  // come best first, so a file's first hit is its best).
  std::string all;
  for (const auto& t : terms) all += (all.empty() ? "" : " ") + t;
  auto hits = store.SearchMemory(user_id, session_id, all, settings.search_limit);
  if (!hits) return hits.status();
  for (const auto& h : *hits) {
    if (h.file_id != current_file_id) note(h);
  }
  // One keyword at a time: which keywords each file holds.
  for (const auto& t : terms) {
    auto term_hits = store.SearchMemory(user_id, session_id, t, settings.search_limit);
    if (!term_hits) return term_hits.status();
    std::set<std::string> files;
    for (const auto& h : *term_hits) {
      if (h.file_id == current_file_id || !files.insert(h.file_id).second) continue;
      note(h).terms.push_back(t);
    }
  }

  for (auto& [id, ref] : by_file) {
    if (static_cast<int>(ref.terms.size()) >= std::max(settings.min_shared_terms, 1)) {
      out.push_back(std::move(ref));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Reference& a, const Reference& b) {
    if (a.terms.size() != b.terms.size()) return a.terms.size() > b.terms.size();
    return a.score > b.score;
  });
  if (static_cast<int>(out.size()) > settings.max_references) out.resize(settings.max_references);
  return out;
}

}  // namespace conveyor::worker
