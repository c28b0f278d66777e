// File: processing/internal/analysis.h
#pragma once

#include <string>

namespace conveyor::processing::internal {

// Summarize(), with sentences sharing words with `focus` (the user's message)
// preferred. An empty focus gives exactly Summarize().
std::string SummarizeFocused(const std::string& text, int max_sentences, const std::string& focus);

}  // namespace conveyor::processing::internal
