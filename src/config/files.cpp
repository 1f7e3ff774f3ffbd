#include "config/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace wp::config {

int read_file(const std::string& path, std::string& out, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno;
  }
  out.clear();
  char buf[65536];
  int error = 0;
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      if (out.size() >= max_bytes) {
        break;  // the caller tells "too large" from the size
      }
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      error = errno;
      break;
    }
  }
  ::close(fd);
  return error;
}

}  // namespace wp::config
