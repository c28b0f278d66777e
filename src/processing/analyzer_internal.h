// File: processing/analyzer_internal.h
//
// Shared by the analysis providers (analyzer.cc, analyzer_openai.cc); not
// part of the module's API.
#pragma once

#include <memory>

#include "processing/analyzer.h"

namespace conveyor::processing::internal {

// Keywords, language and counts of `input` (everything but the summary),
// with `provider` recorded.
Analysis LocalFacts(const AnalysisInput& input, const AnalyzerSettings& settings,
                    std::string provider);

// "Plain text, 532 words, 3 pages." style first line.
std::string DescribeCounts(FileKind kind, const Analysis& facts);

std::unique_ptr<Analyzer> MakeOpenAiAnalyzer(const AnalyzerSettings& settings);

}  // namespace conveyor::processing::internal
