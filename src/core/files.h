// File: core/files.h
//
// Private files and directories: the service's data (database, uploads) is
// readable by its own account only.
#pragma once

#include <string>

#include "core/error.h"

namespace conveyor {

// Creates `path` and any missing parents, each new directory with mode 0700
// (whatever the umask). Directories that already exist keep their mode: an
// operator may have shared one on purpose. kUnavailable on failure.
Status CreatePrivateDirs(const std::string& path);

// Creates the regular file `path` with mode 0600 when it does not exist (so a
// library that then opens it, e.g. SQLite, keeps that mode and gives it to
// its side files). An existing file is left as it is. kUnavailable on failure.
Status CreatePrivateFile(const std::string& path);

}  // namespace conveyor
