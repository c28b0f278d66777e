// File: worker/references.h
//
// Cross-upload references: which earlier files of the same user and session
// talk about the same things as a new one. The worker puts them in the job's
// result as `references: [{fileId, jobId, snippet, terms}]`.
//
// The new file's top keywords (processing::Analysis::keywords) are searched
// in the session's memory (MetadataStore::SearchMemory, full-text, stemmed):
// once all together, which ranks the earlier files and gives each its best
// matching snippet, and once per keyword, which tells which keywords each
// file shares. Files sharing more keywords come first, then by search score.
//
// Call it before or after storing the new file's memory: the new file itself
// (`current_file_id`) is never returned.
//
// Errors: those of SearchMemory (kUnavailable when the database is down, which
// callers may treat as "no references" rather than fail the job).
// Threads: blocking; thread-safe when the store is.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"

namespace conveyor::storage {
class MetadataStore;
}

namespace conveyor::worker {

struct Reference {
  std::string file_id;             // the earlier file
  std::string job_id;              // its job
  std::string snippet;             // its best matching chunk excerpt, matches as **word**
  std::vector<std::string> terms;  // the new file's keywords it contains, in keyword order
  double score = 0;                // search score of the snippet (higher is better)
};

struct ReferenceSettings {
  int max_terms = 6;        // top keywords searched
  int max_references = 5;   // earlier files returned at most
  int min_shared_terms = 1; // an earlier file must contain at least this many keywords
  int search_limit = 50;    // hits read per search (SearchMemory clamps to 100)
};

Result<std::vector<Reference>> FindReferences(storage::MetadataStore& store,
                                              const std::string& user_id,
                                              const std::string& session_id,
                                              const std::string& current_file_id,
                                              const std::vector<std::string>& keywords,
                                              const ReferenceSettings& settings = {});

}  // namespace conveyor::worker
