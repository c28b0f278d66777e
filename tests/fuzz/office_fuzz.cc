// libFuzzer target for the office readers (processing/internal/office.h):
// OfficeKind (detection) then ExtractOffice (text) with the production
// Limits, on a file holding the input.
//
// An input starting with "PK" is used as the zip file itself (the zip reader,
// damaged and bomb-like archives). Any other input lists entries to zip here,
// stored uncompressed so that mutations reach the XML:
//   \x01<name>\x02<content>\x01<name>\x02<content>...
// which lets the fuzzer change part names and XML without the CRCs and
// deflate streams of a real zip in the way. Seeds of both forms are in
// tests/fuzz/corpus/office_fuzz (tests/fuzz/make_office_corpus.py).
//
// Besides the sanitizers: detection and extraction agree (a detected kind
// extracts or fails with a true error, never "Invalid file format" by
// disagreeing about the kind), errors carry the documented codes, and the
// text is valid UTF-8.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "processing/internal/office.h"
#include "processing/internal/text_util.h"

namespace {

using conveyor::Errc;
using conveyor::processing::FileKind;
using conveyor::processing::Limits;
namespace internal = conveyor::processing::internal;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "office_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

// Zips the \x01name\x02content entries of `spec` (stored) into `path`.
bool WriteZip(std::string_view spec, const std::string& path) {
  archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  archive_write_set_options(a, "zip:compression=store");
  if (archive_write_open_filename(a, path.c_str()) != ARCHIVE_OK) {
    archive_write_free(a);
    return false;
  }
  while (!spec.empty()) {
    size_t start = spec.find('\x01');
    if (start == std::string_view::npos) break;
    spec.remove_prefix(start + 1);
    size_t name_end = spec.find('\x02');
    if (name_end == std::string_view::npos) break;
    std::string name(spec.substr(0, name_end));
    spec.remove_prefix(name_end + 1);
    size_t next = spec.find('\x01');
    std::string_view content = spec.substr(0, next);
    spec.remove_prefix(content.size());
    if (name.empty() || name.find('\0') != std::string::npos) continue;
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    if (archive_write_header(a, e) == ARCHIVE_OK && !content.empty()) {
      archive_write_data(a, content.data(), content.size());
    }
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return true;
}

bool WriteRaw(std::string_view bytes, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

const std::string& FilePath() {
  static const std::string path = [] {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/office_fuzz." + std::to_string(getpid()) + ".zip";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::atexit([] { unlink(FilePath().c_str()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string& path = FilePath();
  bool written = input.starts_with("PK") ? WriteRaw(input, path) : WriteZip(input, path);
  Check(written, "cannot write the input file");

  // The readers take an open descriptor, as the sandbox child gets one.
  struct Fd {
    int fd;
    ~Fd() { if (fd >= 0) ::close(fd); }
  } in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  Check(in.fd >= 0, "cannot open the input file");

  const Limits limits;  // production limits
  FileKind kind = internal::OfficeKind(in.fd, limits);
  if (kind == FileKind::kUnknown) return 0;
  Check(kind == FileKind::kDocx || kind == FileKind::kXlsx || kind == FileKind::kPptx ||
            kind == FileKind::kOdt || kind == FileKind::kOds || kind == FileKind::kOdp,
        "OfficeKind returned a kind that is not an office format");
  auto out = internal::ExtractOffice(in.fd, kind, limits);
  if (!out.ok()) {
    Check(out.code() == Errc::kInvalidArgument || out.code() == Errc::kResourceExhausted,
          "extraction failed with an undocumented code");
    Check(out.status().message() != "Invalid file format",
          "detected kind is refused as not a file of that kind");
    return 0;
  }
  Check(internal::IsValidUtf8(out->text, /*allow_truncated_tail=*/false),
        "extracted text is not valid UTF-8");
  Check(out->pages == 0, "pages counted in an office file");
  Check(out->sheets >= 0 && out->slides >= 0 && out->tables >= 0, "negative count");
  return 0;
}
