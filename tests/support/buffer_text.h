#pragma once
// Test helper: the bytes of a Buffer as a string.
#include <string>

#include "waypoint/buffer/buffer.h"

namespace wp::test {

// Copies out every byte of `b` and empties it (as a callback that takes all of a body does).
inline std::string take_text(buffer::Buffer& b) {
  std::string s(b.length(), '\0');
  b.copy_out(s.data(), s.size());
  b.clear();
  return s;
}

}  // namespace wp::test
