// conveyor-extract: the lean extract server (worker/sandbox.h). The same
// server and child code as `conveyor extract-server` (worker/sandbox_child.h),
// linked with conveyor_processing_lean: no poppler, no Tesseract, none of the
// service's own libraries (Beast, hiredis, libpq, SQLite, curl). Each child it
// forks maps what it links, so a small binary makes a cheap fork and a cheap
// exit. PDFs and images come back kUnimplemented and the worker runs them in
// a child of the full server. Started by the worker only, with its control
// socket on descriptor 3.
#include <cstdio>
#include <string_view>

#include "worker/sandbox_child.h"

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "extract-server") {
    return conveyor::worker::sandbox::RunExtractServer();
  }
  std::fputs("usage: conveyor-extract extract-server (started by the conveyor worker)\n", stderr);
  return 2;
}
