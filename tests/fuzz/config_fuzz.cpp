// Fuzzes the config loader: any bytes give a Snapshot or a ConfigError, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "waypoint/config/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)wp::config::load_snapshot_from_string(text, "/nonexistent/fuzz.yaml");
  } catch (const wp::config::ConfigError&) {
  }
  return 0;
}
