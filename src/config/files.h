#pragma once
// Private to config/: whole-file reads that report errno (for "cannot read X: <strerror>").
#include <string>

namespace wp::config {

// Reads `path` into `out`; returns 0 or the errno of the failure.
int read_file(const std::string& path, std::string& out);

}  // namespace wp::config
