// File: worker/references.h
//
// Cross-upload references: which earlier files of the same user and session
// talk about the same things as a new one. The worker puts them in the job's
// result as `references: [{fileId, jobId, snippet, terms}]`.
//
// Every processed file is stored with its index terms (IndexTerms: its
// kIndexTerms most characteristic words, processing::ExtractKeywords). A new
// file's references are the earlier files whose index terms include some of
// the new file's top `max_terms` terms: files sharing more terms first, then
// the newest; each with its best matching snippet. It is one store query plus
// one snippet query per reference returned (MetadataStore::FindRelatedFiles),
// each bounded whatever the session holds: per term only the
// `per_term_limit` newest files holding it are looked at.
//
// Call it before or after storing the new file's memory: the new file itself
// (`current_file_id`) is never returned.
//
// Errors: those of FindRelatedFiles (kUnavailable when the database is down,
// which callers may treat as "no references" rather than fail the job).
// Threads: blocking; thread-safe when the store is.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"

namespace conveyor::storage {
class MetadataStore;
}

namespace conveyor::worker {

// Index terms stored per file.
inline constexpr int kIndexTerms = 32;

// The index terms of a file's text, most characteristic first, lower case.
std::vector<std::string> IndexTerms(const std::string& text);

struct Reference {
  std::string file_id;             // the earlier file
  std::string job_id;              // its job
  std::string snippet;             // its best matching chunk excerpt, matches as **word**
  std::vector<std::string> terms;  // the new file's terms it holds, in the new file's order
};

struct ReferenceSettings {
  int max_terms = 6;          // the new file's top terms looked for
  int max_references = 5;     // earlier files returned at most
  int min_shared_terms = 1;   // an earlier file must hold at least this many of them
  int per_term_limit = 100;   // newest files read per term (the bound on cost)
};

// `terms`: the new file's index terms (or any keywords), most characteristic
// first; compared lower-cased.
Result<std::vector<Reference>> FindReferences(storage::MetadataStore& store,
                                              const std::string& user_id,
                                              const std::string& session_id,
                                              const std::string& current_file_id,
                                              const std::vector<std::string>& terms,
                                              const ReferenceSettings& settings = {});

}  // namespace conveyor::worker
