// File: processing/test_files.h
//
// Test fixtures built at test time rather than committed as binaries:
// zips (office documents, zip bombs) written with libarchive, PDFs written
// by hand with computed xref offsets, and images of text rendered with
// leptonica's bitmap font.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace conveyor::processing::testing {

using ZipEntries = std::vector<std::pair<std::string, std::string>>;  // (name, content)

// Writes a deflated zip at `path`; entries named "mimetype" are stored
// uncompressed, as ODF asks.
void WriteZip(const std::string& path, const ZipEntries& entries);

// A zip with `entries` and then `zero_bytes` of zeros in `bomb_name`,
// streamed to the deflater in blocks (nothing of that size is held).
void WriteZipBomb(const std::string& path, const ZipEntries& entries, const std::string& bomb_name,
                  int64_t zero_bytes);

// Minimal office packages: the parts a reader needs and nothing else.
ZipEntries Docx(const std::string& body_xml);  // body_xml goes inside <w:body>
ZipEntries Xlsx(const std::vector<std::string>& shared_strings,
                const std::vector<std::pair<std::string, std::string>>& sheets);  // (name, <sheetData> xml)
ZipEntries Pptx(const std::vector<std::string>& slide_texts);  // one text run per slide, in order
ZipEntries Odf(const std::string& mimetype, const std::string& office_body_xml);

// A PDF with one page per string (each line of it shown in Helvetica).
// `encrypted` adds a standard security handler whose user password is not
// empty, so the document cannot be opened without it.
std::string Pdf(const std::vector<std::string>& pages, bool encrypted = false);

// `text` (upper case and digits read best) rendered with leptonica's bitmap
// font (20 pt), in IFF format `format` (IFF_PNG, IFF_JFIF_JPEG, IFF_TIFF_ZIP).
std::string TextImage(const std::string& text, int format);

}  // namespace conveyor::processing::testing
