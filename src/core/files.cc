#include "core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace conveyor {

Status CreatePrivateDirs(const std::string& path) {
  if (path.empty()) return OkStatus();
  // Each prefix ending before a '/', then the whole path.
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      // mkdir's mode is masked by the umask; a umask of 0777 would leave us
      // a directory we cannot use, so set it exactly.
      (void)::chmod(prefix.c_str(), 0700);
      continue;
    }
    if (errno == EEXIST) {
      struct stat st {};
      if (::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    }
    return Unavailable("create " + prefix + ": " + std::strerror(errno));
  }
  return OkStatus();
}

Status CreatePrivateFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    (void)::fchmod(fd, 0600);
    ::close(fd);
    return OkStatus();
  }
  if (errno == EEXIST) return OkStatus();
  return Unavailable("create " + path + ": " + std::strerror(errno));
}

}  // namespace conveyor
