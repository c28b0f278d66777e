// File: http/internal/embedded_files.h
//
// Files compiled into the binary (src/http/embed_files.cmake), so that the
// single binary serves them: the OpenAPI document (src/http/openapi.json,
// the one source of the API's description) and the web page (web/).
#pragma once

#include <string_view>
#include <vector>

namespace conveyor::http {

struct EmbeddedFile {
  std::string_view name;  // its path in the repository, e.g. "web/index.html"
  std::string_view body;
};

// Every embedded file, in the order CMake listed them.
const std::vector<EmbeddedFile>& EmbeddedFiles();

// The file called `name`, or nullptr.
inline const EmbeddedFile* FindEmbeddedFile(std::string_view name) {
  for (const EmbeddedFile& f : EmbeddedFiles()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace conveyor::http
