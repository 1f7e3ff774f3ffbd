#pragma once
// Private to config/: whole-file reads that report errno (for "cannot read X: <strerror>").
#include <cstddef>
#include <cstdint>
#include <string>

namespace wp::config {

// Reads `path` into `out`, stopping once it holds `max_bytes` or more; returns 0 or the errno of
// the failure.
int read_file(const std::string& path, std::string& out, size_t max_bytes = SIZE_MAX);

}  // namespace wp::config
