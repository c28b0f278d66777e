// File: processing/internal/office.h
//
// Office documents in zip containers: DOCX, XLSX, PPTX (Office Open XML) and
// ODT, ODS, ODP (OpenDocument), read with libarchive and libxml2.
//
// Zip-bomb defences, applied while decompressing (Limits): at most
// max_archive_entries entries, max_archive_bytes uncompressed bytes read in
// all, and no entry expanding more than max_compression_ratio times its
// compressed size (after the first kRatioGraceBytes). Entries we do not need
// (images, fonts) are skipped without being decompressed.
//
// XML is parsed with XML_PARSE_NONET and without entity substitution or DTD
// loading; a document type declaration is refused outright (neither format
// uses one), and elements nested deeper than kMaxXmlDepth are refused before
// libxml2's own limit of 256.
#pragma once

#include <cstddef>
#include <string>

#include "core/error.h"
#include "processing/processing.h"

namespace conveyor::processing::internal {

// Uncompressed bytes an entry may produce before its compression ratio is
// checked: tiny parts full of repeated markup legitimately compress 300:1.
constexpr int64_t kRatioGraceBytes = 1 << 20;
// Deepest element nesting accepted in office XML. Word documents nest a few
// dozen levels (tables in tables, text boxes); libxml2 stops at 256.
constexpr int kMaxXmlDepth = 200;

// Which office format the zip open as `fd` (read from offset 0) holds: told by its "mimetype" entry
// (OpenDocument) or the main part's type in "[Content_Types].xml" (Office
// Open XML), never by the name. kUnknown for other zips or unreadable files.
FileKind OfficeKind(int fd, const Limits& limits);

// The text of the office file open as `fd`. `kind` is one of kDocx, kXlsx,
// kPptx, kOdt, kOds, kOdp. Errors: kInvalidArgument "Invalid file format"
// (not such a file), "Invalid DOCX: ..." and the like for broken XML or
// nesting; "Encrypted documents are not supported"; kResourceExhausted for
// the zip-bomb limits.
Result<Extracted> ExtractOffice(int fd, FileKind kind, const Limits& limits);

}  // namespace conveyor::processing::internal
