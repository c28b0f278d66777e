// File: storage/snippet.h
//
// A reference's snippet, computed from the text of the earlier file's chunks
// instead of by a full-text query. The files a reference names were found
// by exact equality of index terms (MemoryTerm), so the terms occur in their
// text as words; finding them there costs what the file's chunks cost,
// whatever the size of the session or of the index.
//
// Words are what the index terms are made of: the word rule of
// core/words.h, which processing cuts the terms by.
//
// The snippet has the shape of SQLite FTS5's snippet(): at most `max_words`
// words of the text with what lies between them, each matching word wrapped
// in "**", and "…" where the text goes on before or after the window.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace conveyor::storage {

// How many words of `text` equal one of `terms` (lower-case).
int CountTermHits(std::string_view text, const std::vector<std::string>& terms);

// The window of at most `max_words` words of `text` that holds the most
// distinct terms, then the most matching words, then comes first; centred on
// its matches. "" when no word of `text` matches (or max_words < 1).
std::string TermSnippet(std::string_view text, const std::vector<std::string>& terms,
                        int max_words);

// The snippet of the chunk (in order) with the most matching words, the
// first among equals; "" when none matches.
std::string BestChunkSnippet(const std::vector<std::string>& chunks,
                             const std::vector<std::string>& terms, int max_words);

}  // namespace conveyor::storage
